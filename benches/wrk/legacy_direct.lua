-- The new endpoint called directly (or passed through the proxy): POST /user/tokens/named as
-- alice, with the body the proxy itself sends for a legacy group invite. The stand-in, like
-- Onezone, refuses a name its owner already uses (400 badValueIdentifierOccupied), so every
-- request gets a fresh name: a per-run random tag, the wrk thread and a counter. Both sides
-- thus do the same 2xx work at the stand-in: one validated token creation each.
local prefix = os.getenv("BENCH_PREFIX")
local group = os.getenv("BENCH_GROUP_ID")
local token = os.getenv("BENCH_TOKEN")
local path = prefix .. "/user/tokens/named"
local headers = { ["X-Auth-Token"] = token, ["Content-Type"] = "application/json" }
local counter = 0
local tag = nil

function request()
   if tag == nil then
      math.randomseed(os.time() + (tonumber(bench_id) or 0) * 7919)
      tag = string.format("%06x", math.random(0, 0xffffff))
   end
   counter = counter + 1
   local body = string.format(
      '{"name":"user invite to group - %s %s %d %d","type":{"inviteToken":{"inviteType":"userJoinGroup","groupId":"%s"}},"usageLimit":1}',
      group:sub(1, 12), tag, tonumber(bench_id) or 0, counter, group)
   return wrk.format("POST", path, headers, body)
end
