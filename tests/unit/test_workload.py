from bench.config import Workload
from bench.workload import build_workload, sample_lengths


def spec(**kw):
    base = dict(
        requests=50,
        seed=7,
        prompt_len={"dist": "lognormal", "median": 40, "sigma": 1.0, "min": 5, "max": 90},
        output_len={"dist": "normal", "mean": 20, "std": 10, "min": 3, "max": 30},
    )
    return Workload.model_validate({**base, **kw})


def test_deterministic_and_hashed():
    a = build_workload("w", spec(), range(256), warmup_requests=2)
    b = build_workload("w", spec(), range(256), warmup_requests=5)
    assert a.requests == b.requests and a.hash == b.hash  # warm-up does not change the workload
    c = build_workload("w", spec(seed=8), range(256))
    assert c.hash != a.hash


def test_sampling_settings_change_the_hash():
    a = build_workload("w", spec(), range(256))
    assert build_workload("w", spec(temperature=0.7), range(256)).hash != a.hash


def test_lengths_are_clipped_to_bounds():
    w = build_workload("w", spec(), range(256))
    assert all(5 <= r.prompt_len <= 90 and 3 <= r.output_len <= 30 for r in w.requests)
    assert len({r.prompt_len for r in w.requests}) > 10  # really a distribution


def test_uniform_covers_its_range():
    import random

    s = Workload.model_validate({"requests": 1, "prompt_len": 1, "output_len": {"dist": "uniform", "min": 1, "max": 4}})
    values = sample_lengths(s.output_len, 400, random.Random(0))
    assert set(values) == {1, 2, 3, 4}


def test_text_prompts_are_cycled_and_encoded():
    s = Workload.model_validate({"prompts": ["ab", "cde"], "requests": 5, "output_len": 3})
    w = build_workload("w", s, [], encode=lambda t: [ord(c) for c in t])
    assert [r.prompt_ids for r in w.requests] == [(97, 98), (99, 100, 101)] * 2 + [(97, 98)]
    assert w.output_tokens == 15


def test_warmup_has_same_shapes_other_tokens():
    w = build_workload("w", spec(), range(256), warmup_requests=3)
    for warm, real in zip(w.warmup, w.requests):
        assert warm.prompt_len == real.prompt_len and warm.output_len == real.output_len
        assert warm.prompt_ids != real.prompt_ids


def test_token_ids_come_from_the_pool():
    w = build_workload("w", spec(), [5, 6])
    assert {t for r in w.requests for t in r.prompt_ids} <= {5, 6}


def test_a_shared_prefix_starts_every_prompt_and_no_warm_up():
    plain = build_workload("w", spec(), range(256))
    shared = build_workload("w", spec(shared_prefix_len=64), range(256), warmup_requests=3)
    prefix = shared.requests[0].prompt_ids[:64]
    assert all(r.prompt_ids[:64] == prefix for r in shared.requests)
    # after it, each request's own prompt, as without a prefix
    assert [r.prompt_ids[64:] for r in shared.requests] == [r.prompt_ids for r in plain.requests]
    assert [r.output_len for r in shared.requests] == [r.output_len for r in plain.requests]
    assert not any(w.prompt_ids[:64] == prefix for w in shared.warmup)  # nothing cached carries over
    assert shared.hash != plain.hash


def test_the_shared_prefix_counts_towards_the_model_length(tmp_path):
    import pytest

    from bench.errors import UserError
    from bench.suite import load_suite

    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nmodel: synthetic:tiny-llama\nworkloads:\n"
        "  w: {requests: 2, prompt_len: 100, output_len: 20, shared_prefix_len: 400}\n"
        "scenarios:\n  - {name: a, stack: fake, workload: w}\n"
    )
    with pytest.raises(UserError, match="longest prompt \\+ output is 520 tokens"):
        load_suite(str(path))


def test_samples_per_prompt_multiply_the_outputs_not_the_requests():
    w = build_workload("w", spec(samples_per_prompt=3, temperature=0.7), range(256))
    assert len(w.requests) == 50 and len(w.sequences()) == 150
    assert w.output_tokens == 3 * sum(r.output_len for r in w.requests)
    assert w.sequences()[:3] == [w.requests[0]] * 3  # each request's samples next to each other


def test_greedy_samples_and_paged_samples_are_refused(tmp_path):
    import pytest

    from bench.errors import UserError
    from bench.suite import load_suite

    def suite(workload: str, scenario: str) -> str:
        path = tmp_path / "s.yaml"
        path.write_text(
            f"name: s\nmodel: synthetic:tiny-llama\nworkloads:\n  w: {{requests: 2, prompt_len: 8, output_len: 4, "
            f"{workload}}}\nscenarios:\n  - {{name: a, workload: w, {scenario}}}\n"
        )
        return str(path)

    with pytest.raises(UserError, match="needs temperature > 0"):
        load_suite(suite("samples_per_prompt: 2", "stack: hf"))
    with pytest.raises(UserError, match="paged mode generates one output per prompt"):
        load_suite(suite("samples_per_prompt: 2, temperature: 0.5", "stack: hf, mode: paged"))
    assert (
        load_suite(suite("samples_per_prompt: 2, temperature: 0.5", "stack: vllm")).workloads["w"].samples_per_prompt
        == 2
    )
