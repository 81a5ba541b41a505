//! The keep: one instance of codekeep, owning its storage, keys, audit log and accounts.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{Caller, Client, OpCtx, Operation, optional_i64, optional_str, required_str};
use crate::arn::{AccountId, Region};
use crate::clock::{Clock, SystemClock, epoch_seconds};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{BlobStore, Key, LocalBlobStore, MemoryBlobStore, Meta, SqliteMeta};

/// A running codekeep instance. Cheap to clone; all clones share one state.
///
/// ```
/// # fn main() -> Result<(), codekeep::Error> {
/// let keep = codekeep::Keep::memory()?;
/// let account = keep.create_account("demo")?;
/// assert_eq!(account["Id"].as_str().map(str::len), Some(12));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Keep {
    /// The event dispatcher's thread, stopped and joined when the last handle goes. It is
    /// declared first so it is dropped first: the thread then holds no reference to the shared
    /// state, and the keep closes before that drop returns.
    _dispatcher: Arc<crate::events::dispatch::Dispatcher>,
    inner: Arc<KeepInner>,
}

impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keep")
            .field("region", &self.inner.region)
            .field("meta", &self.inner.meta)
            .finish_non_exhaustive()
    }
}

/// Shared state behind every [`Keep`] clone and [`Client`].
pub(crate) struct KeepInner {
    pub meta: Meta,
    pub blobs: Arc<dyn BlobStore>,
    pub policy_cache: crate::iam::authz::PolicyCache,
    pub clock: Arc<dyn Clock>,
    pub region: Region,
    #[cfg(feature = "crypto")]
    pub key_provider: Arc<dyn crate::crypto::KeyProvider>,
    #[cfg(feature = "crypto")]
    pub key_cache: crate::crypto::KeyCache,
    #[cfg(feature = "audit")]
    pub audit: crate::audit::AuditKeys,
    #[cfg(feature = "crypto")]
    pub token_key: crate::iam::TokenKey,
    #[cfg(feature = "crypto")]
    pub mfa_throttle: crate::iam::MfaThrottle,
    /// Where pushes are indexed; the only place a repository's plaintext touches disk.
    #[cfg(feature = "git")]
    pub spool_dir: std::path::PathBuf,
    /// Loaded object indexes of repositories, by repository id.
    #[cfg(feature = "git")]
    pub git_objects: crate::codecommit::git::ObjectsCache,
    /// Where a running server serves git, for RepositoryMetadata's clone URLs.
    #[cfg(feature = "git")]
    pub clone_urls: std::sync::RwLock<crate::codecommit::CloneUrls>,
    /// In-process functions (event targets), by ARN.
    pub functions: crate::events::functions::Functions,
    /// The first retry of a failed delivery waits about this long; each next one twice that.
    pub delivery_retry_base_millis: i64,
    /// Sends webhooks; replaced whole when the host reconfigures webhooks.
    #[cfg(feature = "webhooks")]
    webhooks: std::sync::RwLock<Arc<crate::events::webhook::http::WebhookClient>>,
}

impl KeepInner {
    /// The current webhook client.
    #[cfg(feature = "webhooks")]
    pub(crate) fn webhooks(&self) -> Arc<crate::events::webhook::http::WebhookClient> {
        match self.webhooks.read() {
            Ok(client) => Arc::clone(&client),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// Builds a [`Keep`] from chosen parts; anything not set gets the embedded default.
#[derive(Default)]
pub struct KeepBuilder {
    meta: Option<Meta>,
    blobs: Option<Arc<dyn BlobStore>>,
    clock: Option<Arc<dyn Clock>>,
    region: Option<Region>,
    #[cfg(feature = "crypto")]
    key_provider: Option<Arc<dyn crate::crypto::KeyProvider>>,
    spool_dir: Option<std::path::PathBuf>,
    delivery_retry_base: Option<std::time::Duration>,
}

/// EventBridge-like pacing of retries when nothing else is set.
const DEFAULT_RETRY_BASE: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for KeepBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepBuilder")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl KeepBuilder {
    /// Uses this metadata store (default: a private in-memory SQLite database).
    #[must_use]
    pub fn meta(mut self, meta: Meta) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Uses this blob store (default: in memory).
    #[must_use]
    pub fn blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }

    /// Uses this clock (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets the region (default `us-east-1`).
    #[must_use]
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(region);
        self
    }

    /// Uses this root of trust to wrap key material (default: an ephemeral master key, which
    /// only suits in-memory keeps).
    #[cfg(feature = "crypto")]
    #[must_use]
    pub fn key_provider(mut self, provider: Arc<dyn crate::crypto::KeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// Indexes pushes under this directory (default: `spool/` of the keep's directory, or the
    /// system's temporary directory for a keep in memory). Each push gets its own
    /// subdirectory, removed when the push ends.
    #[must_use]
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// How long the first retry of a failed event delivery waits (default 1 s); each next
    /// retry waits about twice as long (with jitter), up to a minute.
    #[must_use]
    pub fn delivery_retry_base(mut self, base: std::time::Duration) -> Self {
        self.delivery_retry_base = Some(base);
        self
    }

    /// Opens the keep: checks that the key provider matches the stored data and prepares the
    /// audit log.
    ///
    /// # Errors
    /// `AccessDenied` when the key provider cannot unwrap this keep's keys (a wrong master key
    /// or passphrase); `Storage` on storage failures.
    pub fn build(self) -> Result<Keep> {
        let meta = match self.meta {
            Some(m) => m,
            None => Meta::new(SqliteMeta::memory()?),
        };
        #[cfg(feature = "crypto")]
        let key_provider: Arc<dyn crate::crypto::KeyProvider> = match self.key_provider {
            Some(p) => p,
            None => Arc::new(crate::crypto::MasterKeyProvider::ephemeral()?),
        };
        #[cfg(feature = "crypto")]
        check_master_key(&meta, key_provider.as_ref())?;
        #[cfg(feature = "audit")]
        let audit = crate::audit::AuditKeys::load_or_create(&meta, key_provider.as_ref())?;
        #[cfg(feature = "crypto")]
        let token_key = crate::iam::TokenKey::load_or_create(&meta, key_provider.as_ref())?;
        #[cfg(feature = "crypto")]
        meta.set_sealer(Arc::new(crate::crypto::RecordKey::load_or_create(
            &meta,
            key_provider.as_ref(),
        )?));
        let inner = KeepInner {
            meta,
            blobs: self
                .blobs
                .unwrap_or_else(|| Arc::new(MemoryBlobStore::new())),
            policy_cache: crate::iam::authz::PolicyCache::default(),
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            region: self.region.unwrap_or_else(Region::default_region),
            #[cfg(feature = "crypto")]
            key_provider,
            #[cfg(feature = "crypto")]
            key_cache: crate::crypto::KeyCache::new(KEY_CACHE_ENTRIES, KEY_CACHE_TTL_MILLIS),
            #[cfg(feature = "audit")]
            audit,
            #[cfg(feature = "crypto")]
            token_key,
            #[cfg(feature = "crypto")]
            mfa_throttle: crate::iam::MfaThrottle::default(),
            #[cfg(feature = "git")]
            spool_dir: self.spool_dir.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("codekeep-spool-{}", std::process::id()))
            }),
            #[cfg(feature = "git")]
            git_objects: crate::codecommit::git::ObjectsCache::default(),
            #[cfg(feature = "git")]
            clone_urls: std::sync::RwLock::default(),
            functions: crate::events::functions::Functions::default(),
            delivery_retry_base_millis: i64::try_from(
                self.delivery_retry_base
                    .unwrap_or(DEFAULT_RETRY_BASE)
                    .as_millis(),
            )
            .unwrap_or(i64::MAX),
            #[cfg(feature = "webhooks")]
            webhooks: std::sync::RwLock::new(Arc::new(
                crate::events::webhook::WebhookConfig::default().client()?,
            )),
        };
        let inner = Arc::new(inner);
        let dispatcher = crate::events::dispatch::Dispatcher::start(
            &Arc::downgrade(&inner),
            inner.meta.outbox_signal(),
        )?;
        Ok(Keep {
            _dispatcher: Arc::new(dispatcher),
            inner,
        })
    }
}

/// Unwrapped key versions kept in memory at most.
#[cfg(feature = "crypto")]
const KEY_CACHE_ENTRIES: usize = 1024;
/// How long an unwrapped key version stays cached.
#[cfg(feature = "crypto")]
const KEY_CACHE_TTL_MILLIS: i64 = 5 * 60 * 1000;

/// Proves the key provider is the one this keep's data was wrapped with, by unwrapping a check
/// value stored at creation; stores one on first use.
#[cfg(feature = "crypto")]
fn check_master_key(meta: &Meta, provider: &dyn crate::crypto::KeyProvider) -> Result<()> {
    const AAD: &[u8] = b"codekeep master key check v1";
    let key = Key::new("keep").push("master-check");
    meta.txn(|t| match t.get(&key)? {
        Some(wrapped) => provider.unwrap(&wrapped, AAD).map(drop).map_err(|_| {
            Error::new(
                ErrorKind::AccessDenied,
                "the master key or passphrase does not match this keep's data",
            )
        }),
        None => t.put(&key, &provider.wrap(b"ok", AAD)?),
    })
}

impl Keep {
    /// Starts building a keep from chosen parts.
    pub fn builder() -> KeepBuilder {
        KeepBuilder::default()
    }

    /// Opens (creating if needed) the embedded default in directory `path`: `meta.db` (SQLite),
    /// `blobs/` and `master.key` (created with mode 0600 on first open).
    ///
    /// # Errors
    /// `Io` / `Storage` when the directory cannot be used; `AccessDenied` when `master.key` is
    /// readable by others or does not match the data.
    pub fn open(path: impl AsRef<Path>) -> Result<Keep> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        let builder = Keep::builder()
            .meta(Meta::new(SqliteMeta::open(&path.join("meta.db"))?))
            .blobs(Arc::new(LocalBlobStore::open(&path.join("blobs"))?))
            .spool_dir(path.join("spool"));
        #[cfg(feature = "crypto")]
        let builder = builder.key_provider(Arc::new(
            crate::crypto::MasterKeyProvider::load_or_create(&path.join("master.key"))?,
        ));
        builder.build()
    }

    /// Opens (creating if needed) the embedded default in directory `path`, with key material
    /// wrapped by `provider` (an external KMS or HSM) instead of a master key file.
    ///
    /// # Errors
    /// As [`Keep::open`]; `AccessDenied` when `provider` cannot unwrap this keep's keys.
    #[cfg(feature = "crypto")]
    pub fn open_with_key_provider(
        path: impl AsRef<Path>,
        provider: Arc<dyn crate::crypto::KeyProvider>,
    ) -> Result<Keep> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        Keep::builder()
            .meta(Meta::new(SqliteMeta::open(&path.join("meta.db"))?))
            .blobs(Arc::new(LocalBlobStore::open(&path.join("blobs"))?))
            .spool_dir(path.join("spool"))
            .key_provider(provider)
            .build()
    }

    /// Opens the embedded default in `path` with a master key derived from `passphrase`
    /// (PBKDF2-HMAC-SHA256); no key file is written.
    ///
    /// # Errors
    /// As [`Keep::open`]; `AccessDenied` for a wrong passphrase.
    #[cfg(feature = "crypto")]
    pub fn open_with_passphrase(path: impl AsRef<Path>, passphrase: &[u8]) -> Result<Keep> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = path.as_ref();
        std::fs::create_dir_all(path)?;
        let salt_path = path.join("master.salt");
        let salt = match std::fs::read(&salt_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = crate::id::random_bytes::<16>().to_vec();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&salt_path)?;
                f.write_all(&s)?;
                f.sync_all()?;
                s
            }
            Err(e) => return Err(e.into()),
        };
        let provider = crate::crypto::MasterKeyProvider::from_passphrase(
            passphrase,
            &salt,
            crate::crypto::PBKDF2_ITERATIONS,
        )?;
        Keep::open_with_key_provider(path, Arc::new(provider))
    }

    /// A keep that lives only in memory, with an ephemeral master key.
    ///
    /// # Errors
    /// `Internal` if memory or randomness is unavailable.
    pub fn memory() -> Result<Keep> {
        Keep::builder().build()
    }

    /// A client of `service` (`kms`, `cloudtrail`, `organizations`) acting as `caller`.
    ///
    /// # Errors
    /// `InvalidArgument` (`UnknownServiceError`) for an unknown service.
    pub fn client(&self, service: &str, caller: Caller) -> Result<Client> {
        Client::new(self.inner.clone(), service, caller)
    }

    /// Creates an account with a fresh 12-digit id; returns its description
    /// (`Id`, `Arn`, `Name`, `Status`, `JoinedTimestamp`, ...).
    ///
    /// # Errors
    /// `InvalidArgument` for an empty or over-long name.
    pub fn create_account(&self, name: &str) -> Result<Value> {
        let out = self
            .admin()?
            .call("CreateAccount", json!({"AccountName": name}))?;
        Ok(out.get("Account").cloned().unwrap_or(Value::Null))
    }

    /// Every account, oldest first.
    ///
    /// # Errors
    /// `Storage`.
    pub fn list_accounts(&self) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut input = json!({"MaxResults": 20});
            if let (Some(t), Some(obj)) = (&token, input.as_object_mut()) {
                obj.insert("NextToken".into(), json!(t));
            }
            let out = self.admin()?.call("ListAccounts", input)?;
            all.extend(
                out.get("Accounts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            match out.get("NextToken").and_then(Value::as_str) {
                Some(t) => token = Some(t.to_owned()),
                None => return Ok(all),
            }
        }
    }

    /// One account's description.
    ///
    /// # Errors
    /// `NotFound` (`AccountNotFoundException`) for an unknown id.
    pub fn describe_account(&self, id: &AccountId) -> Result<Value> {
        let out = self
            .admin()?
            .call("DescribeAccount", json!({"AccountId": id.as_str()}))?;
        Ok(out.get("Account").cloned().unwrap_or(Value::Null))
    }

    /// The keep's region.
    pub fn region(&self) -> &Region {
        &self.inner.region
    }

    /// Up to `limit` events from the outbox that `consumer` has not acknowledged, oldest
    /// first, as `{"Seq": n, "Event": <EventBridge envelope>}`. Acknowledge with
    /// [`Keep::ack_events`].
    ///
    /// # Errors
    /// `InvalidArgument` for an empty consumer name; `Storage`.
    pub fn read_events(&self, consumer: &str, limit: usize) -> Result<Vec<serde_json::Value>> {
        let region = self.inner.region.as_str();
        Ok(self
            .inner
            .meta
            .outbox_read(consumer, limit)?
            .iter()
            .map(|e| serde_json::json!({"Seq": e.seq, "Event": e.to_eventbridge(region)}))
            .collect())
    }

    /// Registers an in-process function of `account` as `name`, callable as an event target
    /// at `arn:aws:lambda:REGION:ACCOUNT:function:NAME` (the ARN is returned). It receives the
    /// event (or the target's shaped input) as JSON text; `Err(reason)`, or a panic, fails
    /// the delivery, which is retried per the target's RetryPolicy. Registering a name again
    /// replaces the function.
    ///
    /// # Errors
    /// `InvalidArgument` for a name Lambda would refuse or an account id that is not one.
    pub fn register_function(
        &self,
        account: &str,
        name: &str,
        function: impl Fn(&str) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Result<String> {
        let arn = self.function_arn(account, name)?;
        self.inner
            .functions
            .register(arn.clone(), Arc::new(function))?;
        Ok(arn)
    }

    /// Removes a registered function; true when there was one. Deliveries to it fail (and are
    /// retried) until a function is registered under the name again.
    ///
    /// # Errors
    /// As [`Keep::register_function`].
    pub fn remove_function(&self, account: &str, name: &str) -> Result<bool> {
        let arn = self.function_arn(account, name)?;
        self.inner.functions.remove(&arn)
    }

    fn function_arn(&self, account: &str, name: &str) -> Result<String> {
        let account: crate::arn::AccountId = account.parse()?;
        crate::events::functions::check_name(name)?;
        Ok(format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.inner.region.as_str(),
            account.as_str()
        ))
    }

    /// Sets where webhooks may go, how long an attempt may take and which extra CAs https
    /// endpoints may use. Until this is called, no webhook is allowed anywhere. Deliveries
    /// already due use the new settings from their next attempt.
    ///
    /// # Errors
    /// `InvalidArgument` when the CA file cannot be read as PEM certificates.
    #[cfg(feature = "webhooks")]
    pub fn configure_webhooks(&self, config: &crate::events::webhook::WebhookConfig) -> Result<()> {
        let client = Arc::new(config.client()?);
        match self.inner.webhooks.write() {
            Ok(mut current) => *current = client,
            Err(poisoned) => *poisoned.into_inner() = client,
        }
        Ok(())
    }

    /// Up to `max` messages waiting in the in-process application queue `queue` of `account`
    /// (filled by `sns` subscriptions with protocol `application` and that endpoint), oldest
    /// first: each `{"ReceiptHandle", "MessageId", "SubscriptionArn", "Body"}`. A message stays
    /// until deleted with [`Keep::delete_application_message`].
    ///
    /// # Errors
    /// `Storage`.
    pub fn application_messages(
        &self,
        account: &str,
        queue: &str,
        max: usize,
    ) -> Result<Vec<serde_json::Value>> {
        crate::events::sns::application_messages(&self.inner, account, queue, max)
    }

    /// Deletes a message read with [`Keep::application_messages`]; true when it was there.
    ///
    /// # Errors
    /// `Storage`.
    pub fn delete_application_message(
        &self,
        account: &str,
        queue: &str,
        receipt_handle: &str,
    ) -> Result<bool> {
        crate::events::sns::delete_application_message(&self.inner, account, queue, receipt_handle)
    }

    /// The deliveries that ran out of retries into the dead-letter queue `queue_arn` (a
    /// target's `DeadLetterConfig.Arn`): each with the event, the rule, the target id, the
    /// attempts made and the last error.
    ///
    /// # Errors
    /// `Storage`.
    pub fn dead_letters(&self, queue_arn: &str) -> Result<Vec<serde_json::Value>> {
        crate::events::dispatch::dead_letters(&self.inner, queue_arn)
    }

    /// Acknowledges, for `consumer`, every event up to and including `seq`.
    ///
    /// # Errors
    /// `InvalidArgument` for an empty consumer name; `Storage`.
    pub fn ack_events(&self, consumer: &str, seq: u64) -> Result<()> {
        self.inner.meta.outbox_ack(consumer, seq)
    }

    /// The metadata store (for tools and tests; operations go through clients).
    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    pub(crate) fn inner(&self) -> &Arc<KeepInner> {
        &self.inner
    }

    fn admin(&self) -> Result<Client> {
        self.client("organizations", Caller::keep_admin())
    }
}

// ---- the organizations service: accounts ----

macro_rules! org_op {
    ($name:literal, $handler:expr, read_only = $ro:expr) => {
        Operation {
            service: "organizations",
            iam_prefix: "organizations",
            event_source: "organizations.amazonaws.com",
            name: $name,
            read_only: $ro,
            blob_members: &[],
            secret_members: &[],
            resources: &[
                ORG_ROOT,
                "arn:aws:organizations::000000000000:account/o-codekeep/*",
            ],
            handler: $handler,
        }
    };
}

/// Account administration, shaped like AWS Organizations. Only the keep administrator may call
/// these: the organization's root belongs to no member account.
pub(crate) static ORGANIZATION_OPERATIONS: &[Operation] = &[
    org_op!("CreateAccount", create_account, read_only = false),
    org_op!("ListAccounts", list_accounts, read_only = true),
    org_op!("DescribeAccount", describe_account, read_only = true),
];

const ORG_ROOT: &str = "arn:aws:organizations::000000000000:root/o-codekeep/r-root";

/// Does the keep have the account `id`? (Callers of accounts that do not exist are refused.)
pub(crate) fn account_exists(txn: &mut crate::store::Txn<'_>, id: &str) -> Result<bool> {
    Ok(txn.get(&account_key(id))?.is_some())
}

fn account_key(id: &str) -> Key {
    Key::new("org").push("account").push(id)
}

fn account_arn(id: &str) -> String {
    format!("arn:aws:organizations::000000000000:account/o-codekeep/{id}")
}

fn create_account(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    ctx.authorize(&[ORG_ROOT.to_owned()])?;
    let name = required_str(input, "AccountName")?;
    if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidInputException",
            "AccountName must have 1 to 50 printable characters",
        ));
    }
    let email = optional_str(input, "Email")?.unwrap_or_default();
    let mut id = AccountId::random();
    while ctx.txn.get(&account_key(id.as_str()))?.is_some() {
        id = AccountId::random();
    }
    let account = json!({
        "Id": id.as_str(),
        "Arn": account_arn(id.as_str()),
        "Name": name,
        "Email": email,
        "Status": "ACTIVE",
        "State": "ACTIVE",
        "JoinedMethod": "CREATED",
        "JoinedTimestamp": epoch_seconds(ctx.now()),
    });
    ctx.txn.put_json(&account_key(id.as_str()), &account)?;
    ctx.audit_resources.push((
        "AWS::Organizations::Account".to_owned(),
        account_arn(id.as_str()),
    ));
    Ok(json!({
        "CreateAccountStatus": {
            "Id": format!("car-{}", crate::id::uuid_v4().replace('-', "")),
            "AccountName": name,
            "State": "SUCCEEDED",
            "AccountId": id.as_str(),
            "RequestedTimestamp": epoch_seconds(ctx.now()),
            "CompletedTimestamp": epoch_seconds(ctx.now()),
        },
        "Account": account,
    }))
}

fn list_accounts(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    ctx.authorize(&[ORG_ROOT.to_owned()])?;
    let max = optional_i64(input, "MaxResults")?.unwrap_or(20);
    if !(1..=20).contains(&max) {
        return Err(Error::aws(
            ErrorKind::InvalidArgument,
            "InvalidInputException",
            "MaxResults must be between 1 and 20",
        ));
    }
    let after = optional_str(input, "NextToken")?.map(account_key);
    let limit = usize::try_from(max).unwrap_or(20);
    let rows = ctx
        .txn
        .scan_prefix(&Key::new("org").push("account"), after.as_ref(), limit + 1)?;
    let mut accounts = Vec::new();
    let mut next = None;
    for (i, (k, v)) in rows.into_iter().enumerate() {
        if i == limit {
            next = k
                .last()
                .and(accounts.last().and_then(|a: &Value| a.get("Id").cloned()));
            break;
        }
        accounts.push(serde_json::from_slice::<Value>(&v)?);
    }
    let mut out = json!({"Accounts": accounts});
    if let (Some(n), Some(obj)) = (next, out.as_object_mut()) {
        obj.insert("NextToken".into(), n);
    }
    Ok(out)
}

fn describe_account(ctx: &mut OpCtx<'_, '_>, input: &Value) -> Result<Value> {
    let id: AccountId = required_str(input, "AccountId")?.parse()?;
    ctx.authorize(&[account_arn(id.as_str())])?;
    let account: Value = ctx
        .txn
        .get_json(&account_key(id.as_str()))?
        .ok_or_else(|| {
            Error::aws(
                ErrorKind::NotFound,
                "AccountNotFoundException",
                format!("account `{id}` does not exist"),
            )
        })?;
    Ok(json!({"Account": account}))
}
