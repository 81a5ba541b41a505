//! Topics (`sns`): CreateTopic, DeleteTopic, ListTopics, Get/SetTopicAttributes, Subscribe,
//! ConfirmSubscription, Unsubscribe, ListSubscriptions(ByTopic), Get/SetSubscriptionAttributes
//! and Publish. A publish writes one delivery record per subscription whose filter policy
//! passes, in the publish's own transaction; the events dispatcher delivers them (in-process
//! functions, webhooks, in-process application queues) with retries and the subscription's
//! dead-letter queue, like a rule's targets.

mod deliver;
pub mod filter;
mod publish;
mod subscriptions;
mod topics;

use serde::{Deserialize, Serialize};

pub use filter::{FilterPolicy, Scope};

pub(crate) use deliver::{application_messages, attempt, delete_application_message};
pub(crate) use publish::publish_in;

use crate::api::Operation;
use crate::error::{Error, ErrorKind};
use crate::store::Key;

macro_rules! sns_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        sns_op!($name, $handler, read_only = $ro, secrets = &[])
    };
    ($name:literal, $handler:expr, read_only = $ro:expr, secrets = $secrets:expr) => {
        Operation {
            service: "sns",
            iam_prefix: "sns",
            event_source: "sns.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: $secrets,
            resources: &["arn:aws:sns:*:*:*", "*"],
            handler: $handler,
        }
    };
}

pub(crate) static SNS_OPERATIONS: &[Operation] = &[
    sns_op!("CreateTopic", topics::create_topic, read_only = false),
    sns_op!("DeleteTopic", topics::delete_topic, read_only = false),
    sns_op!("ListTopics", topics::list_topics, read_only = true),
    sns_op!(
        "GetTopicAttributes",
        topics::get_topic_attributes,
        read_only = true
    ),
    sns_op!(
        "SetTopicAttributes",
        topics::set_topic_attributes,
        read_only = false
    ),
    sns_op!(
        "Subscribe",
        subscriptions::subscribe,
        read_only = false,
        secrets = &["SigningSecret"]
    ),
    sns_op!(
        "ConfirmSubscription",
        subscriptions::confirm,
        read_only = false,
        secrets = &["Token"]
    ),
    sns_op!("Unsubscribe", subscriptions::unsubscribe, read_only = false),
    sns_op!(
        "ListSubscriptions",
        subscriptions::list_all,
        read_only = true
    ),
    sns_op!(
        "ListSubscriptionsByTopic",
        subscriptions::list_by_topic,
        read_only = true
    ),
    sns_op!(
        "GetSubscriptionAttributes",
        subscriptions::get_attributes,
        read_only = true
    ),
    sns_op!(
        "SetSubscriptionAttributes",
        subscriptions::set_attributes,
        read_only = false
    ),
    // A message is customer content: kept out of the audit log (sealed in delivery records).
    sns_op!(
        "Publish",
        publish::publish,
        read_only = false,
        secrets = &["Message"]
    ),
];

/// A stored topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Topic {
    pub name: String,
    pub arn: String,
    pub owner: String,
    pub display_name: String,
}

/// A stored subscription.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Subscription {
    pub arn: String,
    pub topic_arn: String,
    pub owner: String,
    pub protocol: String,
    pub endpoint: String,
    pub pending: bool,
    /// SHA-256 (hex) of the confirmation token, while pending.
    pub token_sha256: Option<String>,
    pub authenticated_unsubscribe: bool,
    pub raw: bool,
    pub filter_policy: Option<String>,
    pub filter_scope: Option<String>,
    pub redrive_policy: Option<String>,
    /// http/https: the Standard Webhooks signing secret, wrapped by the key provider (base64).
    pub secret_wrapped: Option<String>,
}

fn topic_prefix(account: &str) -> Key {
    Key::new("sns").push(account).push("topic")
}

fn subscription_prefix(account: &str, topic: &str) -> Key {
    Key::new("sns")
        .push(account)
        .push("subscription")
        .push(topic)
}

/// The subscriptions of the topic an ARN names.
fn subscriptions_of(
    txn: &mut crate::store::Txn<'_>,
    topic_arn: &str,
) -> crate::error::Result<Vec<Subscription>> {
    let (account, name) = parse_topic_arn(topic_arn).unwrap_or_default();
    txn.scan_prefix(&subscription_prefix(&account, &name), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice(&v).map_err(Into::into))
        .collect()
}

fn all_subscriptions_prefix(account: &str) -> Key {
    Key::new("sns").push(account).push("subscription")
}

/// `(account, topic name)` of a topic ARN.
fn parse_topic_arn(arn: &str) -> Option<(String, String)> {
    let parsed = arn.parse::<crate::arn::Arn>().ok()?;
    if parsed.service() != "sns" || parsed.resource().contains(':') {
        return None;
    }
    Some((parsed.account().to_owned(), parsed.resource().to_owned()))
}

/// `(account, topic name, id)` of a subscription ARN (`<topic ARN>:<id>`).
fn parse_subscription_arn(arn: &str) -> Option<(String, String, String)> {
    let (topic, id) = arn.rsplit_once(':')?;
    let (account, name) = parse_topic_arn(topic)?;
    crate::id::is_uuid(id).then(|| (account, name, id.to_owned()))
}

/// Whether the topic an ARN names exists.
#[cfg_attr(
    not(feature = "git"),
    expect(dead_code, reason = "only repository triggers (git) ask")
)]
pub(crate) fn topic_exists(
    txn: &mut crate::store::Txn<'_>,
    arn: &str,
) -> crate::error::Result<bool> {
    let Some((account, name)) = parse_topic_arn(arn) else {
        return Ok(false);
    };
    Ok(txn
        .get_json::<Topic>(&topic_prefix(&account).push(&name))?
        .is_some_and(|t| t.arn == arn))
}

fn invalid_parameter(message: impl Into<String>) -> Error {
    filter::invalid_parameter(message)
}

fn not_found(message: impl Into<String>) -> Error {
    Error::aws(ErrorKind::NotFound, "NotFound", message).with_status(404)
}

/// SNS paging: at most 100 rows, an opaque `NextToken`.
fn paged(
    rows: &[serde_json::Value],
    input: &serde_json::Value,
    member: &str,
) -> crate::error::Result<serde_json::Value> {
    const PAGE: usize = 100;
    let start = match crate::api::optional_str(input, "NextToken")? {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= rows.len())
            .ok_or_else(|| invalid_parameter("Invalid parameter: NextToken"))?,
    };
    let end = (start + PAGE).min(rows.len());
    let mut out = serde_json::json!({ member: rows.get(start..end).unwrap_or_default() });
    if end < rows.len() {
        crate::api::set_member(&mut out, "NextToken", serde_json::json!(end.to_string()));
    }
    Ok(out)
}
