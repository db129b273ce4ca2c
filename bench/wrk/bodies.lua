-- wrk -s bodies.lua URL -- FILE [once]: POSTs the lines of FILE as bodies, in
-- turn. Cycling, by default; with "once" each line is sent once (refresh
-- tokens: a second use is a 401) and the thread stops when none is left, so
-- no body is ever sent twice. wrk counts only answered requests and divides
-- by the time it ran, so a run cut short still measures right; the script
-- that calls it gives the pool size (the count of lines).
local bodies, i, once = {}, 0, false

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then bodies[#bodies + 1] = line end
   end
   once = args[2] == "once"
   if #bodies == 0 then error("bodies.lua: no lines in " .. args[1]) end
end

function request()
   i = i + 1
   if i > #bodies then
      if once then
         -- the loop ends before this request is answered (never counted);
         -- it is not a refresh, so it spends no token either
         wrk.thread:stop()
         return wrk.format("GET", "/healthz", {}, nil)
      end
      i = 1
   end
   return wrk.format("POST", nil, nil, bodies[i])
end
