-- Health of a privatevault.io object for Argo CD, from its kstatus conditions: one script for
-- all six kinds (each <Kind>/health.lua links here). A status of an older generation is
-- Progressing whatever it says; then Stalled=True is Degraded (the spec cannot be realised as
-- written: the reason says what to fix), Reconciling=True with reason AwaitingQuorum is Suspended
-- (an action waits for approvals), any other Reconciling=True is Progressing, Ready=True is
-- Healthy, and anything else Progressing.
-- Only Lua's base and table libraries are used: Argo CD opens no others for custom checks.
local hs = { status = "Progressing", message = "Waiting for the PrivateVault operator to report status" }

local function find(conditions, wanted)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function describe(condition, default)
  local text = condition.reason or default
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end
local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  if reconciling.reason == "AwaitingQuorum" then
    hs.status = "Suspended"
  end
  hs.message = describe(reconciling, "Reconciling")
  return hs
end
local ready = find(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  if ready.observedGeneration ~= nil and generation ~= nil and ready.observedGeneration ~= generation then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
    return hs
  end
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
return hs
