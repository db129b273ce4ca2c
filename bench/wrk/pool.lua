-- wrk -s pool.lua URL/v1/auth/login -- BODY OUT: logs in with BODY again and
-- again and appends each answer's refresh token to OUT, one per line, as a
-- refresh body: the pool bench/run.sh's refresh row spends, each token once.
-- Run it with one thread (-t1): one file handle.
local body, out

function init(args)
   body = args[1]
   out = assert(io.open(args[2], "a"))
   out:setvbuf("line")
end

function request()
   return wrk.format("POST", nil, nil, body)
end

function response(status, headers, resp)
   if status == 200 then
      local t = resp:match('"refresh_token"%s*:%s*"([^"]+)"')
      if t then out:write('{"refresh_token":"', t, '"}\n') end
   end
end
