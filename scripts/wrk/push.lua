-- wrk script: pushes one body over and over.
-- Environment:
--   BODY    file holding the request body (text exposition format)
--   METHOD  POST (default) or PUT
--   GROUPS  0 (default): every push goes to the URL's path as given;
--           N > 0: pushes rotate over /metrics/job/bench/instance/gNNN,
--           N groups, each wrk thread starting at its own offset.
-- Prints one "WRK ..." line (see report.lua) when the run ends.
local report = dofile(os.getenv("WRK_SCRIPTS") .. "/report.lua")

local file = assert(io.open(assert(os.getenv("BODY"), "BODY is not set"), "rb"))
local body = file:read("*a")
file:close()
local method = os.getenv("METHOD") or "POST"
local groups = tonumber(os.getenv("GROUPS") or "0")

wrk.method = method
wrk.body = body
wrk.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"

local threads = 0
function setup(thread)
  thread:set("offset", threads * 37)
  threads = threads + 1
end

local sent = 0
function request()
  if groups <= 0 then
    return wrk.format()
  end
  local g = (sent + (offset or 0)) % groups
  sent = sent + 1
  return wrk.format(nil, string.format("/metrics/job/bench/instance/g%03d", g))
end

done = report.done
