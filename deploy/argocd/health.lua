-- Argo CD health check for ephyra.io/v1alpha1 MediaServerCluster.
--
-- Install: the `resource.customizations.health.ephyra.io_MediaServerCluster` key of the
-- argocd-cm ConfigMap (argocd-cm.yaml beside this file carries it). Tested by the operator's
-- tests with Debian's lua5.4 against the cases in health_test.yaml, using only what Argo CD
-- gives a script without `useOpenLibs` (the base library: no string, no os).
--
-- The operator writes, from its first reconcile of every generation, `status.observedGeneration`
-- and the conditions Ready, Reconciling and Stalled with their kstatus meanings (the ones Flux
-- reads), so this maps them the same way Flux does:
--   being deleted, not yet reconciled (no status, or an older observedGeneration) -> Progressing
--   Stalled=True (invalid spec, a missing Secret or claim: a person must act)       -> Degraded
--   Reconciling=True (applying, rolling out, waiting for replicas or dependencies)  -> Progressing
--   Ready=True                                                                      -> Healthy
--   Ready False or Unknown while nothing is reconciling                            -> Degraded
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted"
  return hs
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to reconcile this cluster"
  return hs
end

if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to reconcile generation " .. tostring(obj.metadata.generation)
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(stalled, "stalled: a person must act (kubectl describe msc)")
  return hs
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = message_of(reconciling, "reconciling")
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "serving")
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the Ready condition"
  return hs
end

hs.status = "Degraded"
hs.message = message_of(ready, "not ready")
return hs
