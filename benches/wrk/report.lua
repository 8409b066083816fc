-- Prepended to every wrk script of benches/run.py: one machine-readable summary line.
-- Scripts that count answers themselves (response()) set `non2xx` per thread; it is summed here.
local bench_threads = {}

function setup(thread)
   table.insert(bench_threads, thread)
   thread:set("bench_id", #bench_threads)
end

function done(summary, latency, requests)
   local non2xx = 0
   for _, t in ipairs(bench_threads) do
      non2xx = non2xx + (tonumber(t:get("non2xx")) or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d non2xx=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, non2xx, latency:percentile(50), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end
