"""Online serving: an OpenAI-compatible server per stack (vLLM's `vllm serve`, transformers' `transformers
serve` with continuous batching), one load generator that sends both the same requests on a replayable
schedule, and the latency and goodput figures computed from what came back. No torch here: the load
generator runs beside any server."""

# The most output tokens one sweep streams (requests x their longest output x loads): each chunk's time is
# a number in the result file, and the file stays far below what `bench.files` reads. A real sweep
# (6 loads of 1,536 requests of 256 tokens) streams 2.4 M.
MAX_SWEEP_TOKENS = 16_000_000
