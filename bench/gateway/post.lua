-- wrk script: POST a chat completion with a JSON body and a bearer key.
-- Each wrk connection uses its own "user" so sticky assignment spreads.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-client-1")
local model = os.getenv("BENCH_MODEL") or "support-bot"
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"model":"' .. model .. '","user":"user-' .. (counter % 1000) ..
    '","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
  return wrk.format(nil, "/v1/chat/completions", nil, body)
end
