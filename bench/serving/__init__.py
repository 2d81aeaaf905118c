"""Online serving: an OpenAI-compatible server per stack (vLLM's `vllm serve`, transformers' `transformers
serve` with continuous batching), one load generator that sends both the same requests on a replayable
schedule, and the latency and goodput figures computed from what came back. No torch here: the load
generator runs beside any server."""

SCHEMA = "pagedbench-serving/1"  # a serving result file's `schema`
