-- wrk script: GETs the URL as given (e.g. /metrics), no Accept-Encoding.
-- Prints one "WRK ..." line (see report.lua) when the run ends.
local report = dofile(os.getenv("WRK_SCRIPTS") .. "/report.lua")
done = report.done
