-- A read-only legacy call: GET .../user/client_tokens as bob. The passthrough and verify rows
-- use it: Onezone's own legacy invite picks a random 6-hex name suffix without retrying, so at
-- thousands of invites per second it sometimes collides (400, as Onezone would), which is not a
-- fault of either mode. It lists Bob's tokens, not Alice's: the invite rows create thousands of
-- Alice's tokens between the stand-in's resets, which would make her list long and its length
-- depend on what ran before. BENCH_PREFIX and BENCH_LIST_TOKEN come from benches/run.py.
local prefix = os.getenv("BENCH_PREFIX")
local token = os.getenv("BENCH_LIST_TOKEN")
local req = wrk.format("GET", prefix .. "/user/client_tokens", { ["X-Auth-Token"] = token })

function request()
   return req
end
