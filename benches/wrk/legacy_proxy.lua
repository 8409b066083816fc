-- The legacy call through the proxy: POST .../groups/{id}/users/token as alice (no body),
-- which the proxy serves by creating a named invite token at the stand-in
-- (POST /user/tokens/named, 201) and answering 200 {"token": ...}.
-- BENCH_PREFIX, BENCH_GROUP_ID and BENCH_TOKEN come from benches/run.py.
local prefix = os.getenv("BENCH_PREFIX")
local group = os.getenv("BENCH_GROUP_ID")
local token = os.getenv("BENCH_TOKEN")
local req = wrk.format("POST", prefix .. "/groups/" .. group .. "/users/token",
   { ["X-Auth-Token"] = token }, "")

function request()
   return req
end
