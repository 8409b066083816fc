-- Prepended by benches/run.py to every request script (after report.lua): wrk counts only
-- statuses >= 400 as errors, so the legacy rows count every answer that is not 2xx themselves.
-- The plain runs go without it: a response() callback makes wrk hand every answer to Lua.
non2xx = 0

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end
