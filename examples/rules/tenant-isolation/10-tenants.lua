-- Tenant isolation by script: a client's username is "<name>@<tenant>" and everything it does is
-- kept under the topic prefix tenants/<tenant>/, invisibly to the client:
--   * on_connect refuses a username that names no tenant (authentication itself is still the
--     password file's job: configure password_file so nobody can claim someone else's tenant);
--   * on_publish moves a client's message under its tenant's prefix (sensors/1 is stored and
--     routed as tenants/acme/sensors/1);
--   * on_subscribe rewrites each filter the same way (sensors/# becomes tenants/acme/sensors/#, and
--     # becomes tenants/acme/#), so a tenant's filters can never reach another tenant's topics;
--     $-topics ($SYS/...) are refused;
--   * on_deliver strips the prefix on the way out, so the subscriber sees sensors/1 — a topic that
--     still matches the filter it subscribed with (sensors/#), as RULES-API requires.
-- Try it (two shells):
--   mosquitto_sub -u carol@acme -t 'sensors/#' -v
--   mosquitto_pub -u alice@acme -t sensors/1 -m 21      -> carol sees "sensors/1 21"
--   mosquitto_pub -u bob@globex -t sensors/1 -m 99      -> carol sees nothing

-- The tenant named by a username, or nil. Tenant names are plain words, so the prefix built from
-- them can hold no wildcard or extra level.
local function tenant_of(username)
  return username and username:match("^[^@]+@([%w_-]+)$")
end

local function prefix_of(client)
  local t = client and tenant_of(client.username)
  return t and ("tenants/" .. t .. "/")
end

return {
  -- on_publish and on_deliver see every topic (but, like any wildcard, not $-topics)
  match = "#",

  on_connect = function(conn)
    if not tenant_of(conn.username) then
      return false, "bad_username_or_password", "username must be <name>@<tenant>"
    end
    return nil -- the password file (or allow_anonymous) decides the rest
  end,

  on_subscribe = function(sub, client)
    local prefix = prefix_of(client)
    if not prefix or sub.filter:sub(1, 1) == "$" then
      return false, "not_authorized"
    end
    return { filter = prefix .. sub.filter } -- a shared subscription keeps its group
  end,

  on_publish = function(msg, client)
    if not msg.from then return end -- the broker's own messages (tide.publish) are left alone
    local prefix = prefix_of(client)
    if not prefix then
      return false, "not_authorized", "no tenant"
    end
    return { topic = prefix .. msg.topic }
  end,

  on_deliver = function(msg, client)
    local prefix = prefix_of(client)
    if not prefix then return false end
    if msg.topic:sub(1, #prefix) ~= prefix then
      return false -- not this subscriber's tenant (cannot happen with the filters above)
    end
    return { topic = msg.topic:sub(#prefix + 1) }
  end,
}
