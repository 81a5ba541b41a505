//! API destinations (EventBridge's CreateApiDestination, DescribeApiDestination,
//! ListApiDestinations, UpdateApiDestination, DeleteApiDestination): webhook endpoints a rule's
//! target can name. Each destination has its own Standard Webhooks signing secret, made at
//! creation, returned once (`SigningSecret`, codekeep's addition to the output) and stored
//! wrapped by the keep's key provider.
//!
//! Differences from EventBridge, on purpose: `ConnectionArn` is optional (codekeep has no
//! connections; a destination authenticates itself by its signature), `http://` endpoints are
//! accepted (the keep's webhook allowance decides where deliveries may go), and
//! InvocationRateLimitPerSecond is stored but not enforced.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::rules::{check_name, paged};
use super::{not_found, validation};
use crate::api::{OpCtx, optional_i64, optional_str, required_str};
use crate::clock::epoch_seconds;
use crate::error::{Error, ErrorKind, Result};
use crate::keep::KeepInner;
use crate::store::{Key, Txn};

const HTTP_METHODS: &[&str] = &["POST", "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"];
const WRAP_LABEL: &str = "codekeep webhook signing secret v1:";

/// A stored API destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Destination {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub connection_arn: Option<String>,
    pub endpoint: String,
    pub method: String,
    pub rate_limit: Option<i64>,
    pub created: i64,
    pub modified: i64,
    /// The signing secret, wrapped by the key provider (base64).
    secret_wrapped: String,
}

/// EventBridge's default InvocationRateLimitPerSecond.
const DEFAULT_RATE_LIMIT: i64 = 300;

impl Destination {
    fn describe(&self) -> Value {
        let mut out = json!({
            "ApiDestinationArn": self.arn,
            "Name": self.name,
            "ApiDestinationState": "ACTIVE",
            "InvocationEndpoint": self.endpoint,
            "HttpMethod": self.method,
            "CreationTime": epoch_seconds(self.created),
            "LastModifiedTime": epoch_seconds(self.modified),
        });
        for (member, value) in [
            ("Description", self.description.as_ref().map(|d| json!(d))),
            (
                "ConnectionArn",
                self.connection_arn.as_ref().map(|c| json!(c)),
            ),
            (
                "InvocationRateLimitPerSecond",
                Some(json!(self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))),
            ),
        ] {
            if let Some(value) = value {
                crate::api::set_member(&mut out, member, value);
            }
        }
        out
    }

    /// The signing secret, unwrapped.
    pub(crate) fn secret(&self, keep: &KeepInner) -> Result<Zeroizing<String>> {
        super::webhook::unwrap_secret(
            keep,
            &format!("{WRAP_LABEL}{}", self.arn),
            &self.secret_wrapped,
        )
    }
}

fn prefix(account: &str) -> Key {
    Key::new("events").push(account).push("api-destination")
}

fn arn_pattern(ctx: &OpCtx<'_, '_>, account: &str, name: &str) -> String {
    format!(
        "arn:aws:events:{}:{account}:api-destination/{name}",
        ctx.req.region
    )
}

/// The destination an API destination ARN names, if it exists.
pub(crate) fn by_arn(txn: &mut Txn<'_>, arn: &str) -> Result<Option<Destination>> {
    let Ok(parsed) = arn.parse::<crate::arn::Arn>() else {
        return Ok(None);
    };
    let Some(name) = parsed
        .resource()
        .strip_prefix("api-destination/")
        .and_then(|r| r.split('/').next())
    else {
        return Ok(None);
    };
    let found: Option<Destination> = txn.get_json(&prefix(parsed.account()).push(name))?;
    Ok(found.filter(|d| d.arn == arn))
}

fn missing(name: &str) -> Error {
    not_found(format!(
        "Failed to describe the api-destination(s). An api-destination '{name}' does not exist."
    ))
}

fn load(ctx: &mut OpCtx<'_, '_>, name: &str) -> Result<Destination> {
    check_name("name", name)?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[format!("{}/*", arn_pattern(ctx, &account, name))])?;
    ctx.txn
        .get_json(&prefix(&account).push(name))?
        .ok_or_else(|| missing(name))
}

/// Reads the members Create and Update share, over `current` when updating.
fn apply(ctx: &OpCtx<'_, '_>, input: &Value, d: &mut Destination) -> Result<()> {
    if let Some(description) = optional_str(input, "Description")? {
        if description.chars().count() > 512 {
            return Err(validation("Description must be at most 512 characters"));
        }
        d.description = Some(description.to_owned());
    }
    if let Some(connection) = optional_str(input, "ConnectionArn")? {
        d.connection_arn = Some(connection.to_owned());
    }
    if let Some(endpoint) = optional_str(input, "InvocationEndpoint")? {
        if endpoint.len() > 2048 {
            return Err(validation(
                "InvocationEndpoint must be at most 2048 characters",
            ));
        }
        ctx.keep
            .webhooks()
            .check_endpoint(endpoint)
            .map_err(|e| validation(e.message()))?;
        endpoint.clone_into(&mut d.endpoint);
    }
    if let Some(method) = optional_str(input, "HttpMethod")? {
        if !HTTP_METHODS.contains(&method) {
            return Err(validation(format!(
                "1 validation error detected: Value '{method}' at 'httpMethod' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                HTTP_METHODS.join(", ")
            )));
        }
        method.clone_into(&mut d.method);
    }
    if let Some(limit) = optional_i64(input, "InvocationRateLimitPerSecond")? {
        if limit < 1 {
            return Err(validation(
                "InvocationRateLimitPerSecond must be at least 1",
            ));
        }
        d.rate_limit = Some(limit);
    }
    Ok(())
}

pub(crate) fn create(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name = required_str(input, "Name")?;
    check_name("name", name)?;
    required_str(input, "InvocationEndpoint")?;
    required_str(input, "HttpMethod")?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[format!("{}/*", arn_pattern(ctx, &account, name))])?;
    let key = prefix(&account).push(name);
    if ctx.txn.get(&key)?.is_some() {
        return Err(Error::aws(
            ErrorKind::AlreadyExists,
            "ResourceAlreadyExistsException",
            format!("An api-destination '{name}' already exists."),
        )
        .with_status(400));
    }
    let arn = format!(
        "{}/{}",
        arn_pattern(ctx, &account, name),
        crate::id::uuid_v4()
    );
    let (secret, secret_wrapped) =
        super::webhook::new_wrapped_secret(ctx.keep, &format!("{WRAP_LABEL}{arn}"))?;
    let now = ctx.now();
    let mut destination = Destination {
        name: name.to_owned(),
        arn,
        description: None,
        connection_arn: None,
        endpoint: String::new(),
        method: String::new(),
        rate_limit: None,
        created: now,
        modified: now,
        secret_wrapped,
    };
    apply(ctx, input, &mut destination)?;
    ctx.txn.put_json(&key, &destination)?;
    Ok(json!({
        "ApiDestinationArn": destination.arn,
        "ApiDestinationState": "ACTIVE",
        "CreationTime": epoch_seconds(now),
        "LastModifiedTime": epoch_seconds(now),
        "SigningSecret": secret.as_str(),
    }))
}

pub(crate) fn describe(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    Ok(load(ctx, required_str(input, "Name")?)?.describe())
}

pub(crate) fn update(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let mut destination = load(ctx, required_str(input, "Name")?)?;
    apply(ctx, input, &mut destination)?;
    destination.modified = ctx.now();
    let account = ctx.account()?.to_string();
    ctx.txn
        .put_json(&prefix(&account).push(&destination.name), &destination)?;
    Ok(json!({
        "ApiDestinationArn": destination.arn,
        "ApiDestinationState": "ACTIVE",
        "CreationTime": epoch_seconds(destination.created),
        "LastModifiedTime": epoch_seconds(destination.modified),
    }))
}

pub(crate) fn delete(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let destination = load(ctx, required_str(input, "Name")?)?;
    let account = ctx.account()?.to_string();
    ctx.txn.delete(&prefix(&account).push(&destination.name))?;
    Ok(json!({}))
}

pub(crate) fn list(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let name_prefix = optional_str(input, "NamePrefix")?.unwrap_or("");
    let connection = optional_str(input, "ConnectionArn")?;
    let account = ctx.account()?.to_string();
    ctx.authorize(&[format!("{}/*", arn_pattern(ctx, &account, "*"))])?;
    let rows: Vec<Value> = ctx
        .txn
        .scan_prefix(&prefix(&account), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice::<Destination>(&v))
        .collect::<std::result::Result<Vec<_>, _>>()?
        .iter()
        .filter(|d| d.name.starts_with(name_prefix))
        .filter(|d| connection.is_none_or(|c| d.connection_arn.as_deref() == Some(c)))
        .map(|d| {
            // List entries carry no Description, as in EventBridge.
            let mut row = d.describe();
            if let Some(map) = row.as_object_mut() {
                map.remove("Description");
            }
            row
        })
        .collect();
    paged(&rows, input, "ApiDestinations")
}
