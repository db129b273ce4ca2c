-- wrk -s create.lua URL -- TAG: POSTs a record whose body no other request
-- sends (TAG, unique per wrk run, and a counter), so no layer can answer one
-- POST from another. The path and headers (Authorization, Content-Type) are
-- wrk's own, from the command line.
local tag, n = "run", 0

function init(args)
   tag = args[1] or tag
end

function request()
   n = n + 1
   return wrk.format("POST", nil, nil,
      string.format('{"name":"bench-%s-%d","amount":%d,"status":"open"}', tag, n, n))
end
