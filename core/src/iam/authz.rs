//! What the policy engine needs from storage: a principal's policies and a resource's own
//! policy, compiled once and cached until the account's IAM data changes.
//!
//! Every IAM write bumps the account's generation counter in the same transaction; a cached
//! policy set is used only while the stored generation matches, so a change is seen by the very
//! next request, from any process sharing the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{entity_policies, key, lower, policies, roles, users};
use crate::api::Principal;
use crate::error::{Error, Result};
use crate::policy::{Policy, PolicyKind, PolicySet};
use crate::store::Txn;

/// Compiled policy sets by principal, each with the generation it was built at; and compiled
/// policies by kind, name and text, so a policy is parsed once however many principals carry it
/// and however often their sets are rebuilt.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    sets: Mutex<HashMap<String, (u64, Arc<PolicySet>)>>,
    compiled: Mutex<HashMap<[u8; 32], Arc<Policy>>>,
}

const MAX_CACHED: usize = 10_000;

fn generation_key(account: &str) -> crate::store::Key {
    key(account, &["generation"])
}

/// The account's IAM generation.
pub(crate) fn generation(txn: &mut Txn<'_>, account: &str) -> Result<u64> {
    Ok(txn
        .get(&generation_key(account))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Marks the account's IAM data as changed.
pub(crate) fn bump_generation(txn: &mut Txn<'_>, account: &str) -> Result<()> {
    let next = generation(txn, account)?.wrapping_add(1);
    txn.put(&generation_key(account), &next.to_be_bytes())
}

/// The policies that apply to `principal`.
pub(crate) fn policy_set(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    principal: &Principal,
) -> Result<Arc<PolicySet>> {
    let Some(account) = principal.account().map(|a| a.as_str().to_owned()) else {
        return Ok(Arc::new(PolicySet::default()));
    };
    let generation = generation(txn, &account)?;
    let cache_key = principal.cache_key();
    if let Ok(sets) = cache.sets.lock()
        && let Some((g, set)) = sets.get(&cache_key)
        && *g == generation
    {
        return Ok(Arc::clone(set));
    }
    let set = Arc::new(load_policy_set(cache, txn, &account, principal)?);
    if let Ok(mut sets) = cache.sets.lock() {
        if sets.len() >= MAX_CACHED {
            sets.clear();
        }
        sets.insert(cache_key, (generation, Arc::clone(&set)));
    }
    Ok(set)
}

fn load_policy_set(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    account: &str,
    principal: &Principal,
) -> Result<PolicySet> {
    let mut set = PolicySet::default();
    add_scps(cache, txn, account, &mut set)?;
    match principal {
        Principal::User { name, .. } => {
            let user = users::load_user(txn, account, name)?;
            add_user(cache, txn, account, &user, &mut set)?;
        }
        Principal::AssumedRole { session, .. } => {
            let role: roles::RoleRecord = txn
                .get_json(&roles::role_key(account, &session.role_name))?
                .filter(|r: &roles::RoleRecord| r.arn == session.role_arn)
                .ok_or_else(|| crate::api::invalid_token(&session.access_key_id))?;
            add_role(cache, txn, account, &role, &mut set)?;
            #[cfg(feature = "crypto")]
            for (name, doc) in super::sts::session_policy_documents(txn, account, session)? {
                set.session
                    .push(stored(cache, PolicyKind::Identity, &name, &doc)?);
            }
        }
        Principal::Root(_) | Principal::KeepAdmin | Principal::Unauthenticated { .. } => {}
    }
    Ok(set)
}

/// Adds the account's service control policies.
pub(super) fn add_scps(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    account: &str,
    set: &mut PolicySet,
) -> Result<()> {
    for (arn, document) in super::scp::attached(txn, account)? {
        set.service_control
            .push(stored(cache, PolicyKind::ServiceControl, &arn, &document)?);
    }
    Ok(())
}

/// Adds a user's policies, its groups' policies and its permissions boundary.
pub(super) fn add_user(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    account: &str,
    user: &users::UserRecord,
    set: &mut PolicySet,
) -> Result<()> {
    add_entity(
        cache,
        txn,
        account,
        "user",
        &lower(&user.name),
        &user.arn,
        set,
    )?;
    for group in users::groups_of(txn, account, &user.name)? {
        add_entity(
            cache,
            txn,
            account,
            "group",
            &lower(&group.name),
            &group.arn,
            set,
        )?;
    }
    if let Some(boundary) = &user.boundary {
        set.boundary = Some(managed(cache, txn, account, boundary)?);
    }
    Ok(())
}

/// Adds a role's policies and its permissions boundary.
pub(super) fn add_role(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    account: &str,
    role: &roles::RoleRecord,
    set: &mut PolicySet,
) -> Result<()> {
    add_entity(
        cache,
        txn,
        account,
        "role",
        &lower(&role.name),
        &role.arn,
        set,
    )?;
    if let Some(boundary) = &role.boundary {
        set.boundary = Some(managed(cache, txn, account, boundary)?);
    }
    Ok(())
}

/// Adds an entity's inline and attached policies to `set.identity`.
pub(super) fn add_entity(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    account: &str,
    entity: &str,
    lname: &str,
    entity_arn: &str,
    set: &mut PolicySet,
) -> Result<()> {
    for (name, document) in entity_policies::inline_policies(txn, account, entity, lname)? {
        let label = format!("{entity_arn} inline policy {name}");
        set.identity
            .push(stored(cache, PolicyKind::Identity, &label, &document)?);
    }
    for arn in entity_policies::attached_arns(txn, account, entity, lname)? {
        set.identity.push(managed(cache, txn, account, &arn)?);
    }
    Ok(())
}

pub(super) fn managed(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    account: &str,
    arn: &str,
) -> Result<Arc<Policy>> {
    let document = policies::managed_document(txn, account, arn)?
        .ok_or_else(|| Error::storage(format!("attached policy {arn} is missing")))?;
    stored(cache, PolicyKind::Identity, arn, &document)
}

/// The compiled form of a document that was validated when it was stored, parsed only the
/// first time this kind, name and text are seen.
pub(super) fn stored(
    cache: &PolicyCache,
    kind: PolicyKind,
    name: &str,
    document: &str,
) -> Result<Arc<Policy>> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [format!("{kind:?}").as_str(), name, document] {
        digest.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        digest.update(part.as_bytes());
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(digest.finish().as_ref());
    if let Some(p) = cache.compiled.lock().ok().and_then(|m| m.get(&id).cloned()) {
        return Ok(p);
    }
    let policy = Arc::new(
        Policy::parse(kind, name, document)
            .map_err(|e| Error::storage(format!("stored policy {name} no longer parses: {e}")))?,
    );
    if let Ok(mut map) = cache.compiled.lock() {
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(id, Arc::clone(&policy));
    }
    Ok(policy)
}

/// The resource-based policy of the resource `arn`, and whether it must allow explicitly.
pub(crate) fn resource_policy(
    cache: &PolicyCache,
    txn: &mut Txn<'_>,
    action: &str,
    arn: &str,
) -> Result<Option<(Arc<Policy>, bool)>> {
    let Some((kind, document)) = resource_document(txn, action, arn)? else {
        return Ok(None);
    };
    Ok(Some((stored(cache, kind, arn, &document)?, true)))
}

/// The document of a resource-based policy that governs `action` on `arn`: a KMS key policy
/// for KMS actions on a key, a role's trust policy for STS actions on the role.
fn resource_document(
    txn: &mut Txn<'_>,
    action: &str,
    arn: &str,
) -> Result<Option<(PolicyKind, String)>> {
    let service = action.split(':').next().unwrap_or_default();
    let Ok(parsed) = arn.parse::<crate::arn::Arn>() else {
        return Ok(None);
    };
    match parsed.service() {
        #[cfg(feature = "crypto")]
        "kms" if service.eq_ignore_ascii_case("kms") => {
            Ok(crate::crypto::key_policy(txn, &parsed)?.map(|d| (PolicyKind::Resource, d)))
        }
        "iam" if service.eq_ignore_ascii_case("sts") && parsed.resource().starts_with("role/") => {
            let name = parsed.resource().rsplit('/').next().unwrap_or_default();
            Ok(txn
                .get_json::<roles::RoleRecord>(&roles::role_key(parsed.account(), name))?
                .filter(|r| r.arn == arn)
                .map(|r| (PolicyKind::Trust, r.trust_policy)))
        }
        _ => Ok(None),
    }
}
