//! The request context: the condition keys of one request and their values.

/// Condition keys and values of one request (`aws:SourceIp`, `aws:PrincipalTag/team`, ...).
///
/// Key names compare without case, as IAM's do. Values are text, as in IAM's request context;
/// operators read numbers, dates, booleans and addresses out of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    // Sorted by lower-cased key, so lookups are a binary search and never allocate.
    entries: Vec<(Box<str>, ContextValue)>,
}

/// The value of one context key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// A single-valued key.
    Single(Box<str>),
    /// A multivalued key (`aws:TagKeys`), possibly empty.
    Multi(Box<[Box<str>]>),
}

impl ContextValue {
    /// The values, one for a single-valued key.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        let (single, multi): (Option<&str>, &[Box<str>]) = match self {
            ContextValue::Single(v) => (Some(v), &[]),
            ContextValue::Multi(vs) => (None, vs),
        };
        single.into_iter().chain(multi.iter().map(|v| &**v))
    }

    fn is_empty(&self) -> bool {
        matches!(self, ContextValue::Multi(vs) if vs.is_empty())
    }
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Builds a context from JSON: `{"key": "value", "multi": ["a", "b"]}` (numbers and
    /// booleans are taken as their text, as IAM's request context holds them).
    ///
    /// # Errors
    /// `InvalidArgument` for anything else.
    pub fn from_json(value: &serde_json::Value) -> crate::Result<Context> {
        use serde_json::Value;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let bad = |key: &str| {
            crate::Error::invalid(format!(
                "context key `{key}` must have a string, number, boolean or a list of them"
            ))
        };
        let mut context = Context::new();
        let Some(map) = value.as_object() else {
            return Err(crate::Error::invalid(
                "a request context must be a JSON object",
            ));
        };
        for (key, v) in map {
            match v {
                Value::Array(items) => {
                    let values: Option<Vec<String>> = items.iter().map(text).collect();
                    context.insert_multi(key, values.ok_or_else(|| bad(key))?);
                }
                v => context.insert(key, &text(v).ok_or_else(|| bad(key))?),
            }
        }
        Ok(context)
    }

    /// Sets a single-valued key, replacing any earlier value.
    pub fn insert(&mut self, key: &str, value: &str) {
        self.set(key, ContextValue::Single(value.into()));
    }

    /// Sets a multivalued key, replacing any earlier value.
    pub fn insert_multi<I, S>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let values = values.into_iter().map(|v| v.as_ref().into()).collect();
        self.set(key, ContextValue::Multi(values));
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) {
        let key = key.to_ascii_lowercase();
        if let Ok(i) = self.position(&key) {
            self.entries.remove(i);
        }
    }

    /// Removes every key starting with `prefix` (any case), e.g. `aws:ResourceTag/`.
    pub fn remove_prefix(&mut self, prefix: &str) {
        let prefix = prefix.to_ascii_lowercase();
        self.entries.retain(|(k, _)| !k.starts_with(&prefix));
    }

    /// The value of `key` (any case).
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.lookup(&key.to_ascii_lowercase())
        } else {
            self.lookup(key)
        }
    }

    /// The keys present, lower-cased.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| &**k)
    }

    /// The value of an already lower-cased key; `None` for a missing key, an empty list, or a
    /// tag key whose value is the empty string (IAM reads a user-supplied empty tag value as
    /// null; other keys keep it, as S3's `s3:prefix` of `""` for a bucket's root).
    pub(crate) fn lookup(&self, lower_key: &str) -> Option<&ContextValue> {
        self.position(lower_key)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, v)| v)
            .filter(|v| !(v.is_empty() || is_tag_key(lower_key) && v.values().all(str::is_empty)))
    }

    /// The single value of an already lower-cased key, for policy variables: multivalued
    /// keys do not resolve.
    pub(crate) fn single_value(&self, lower_key: &str) -> Option<&str> {
        match self.lookup(lower_key)? {
            ContextValue::Single(v) => Some(v),
            ContextValue::Multi(_) => None,
        }
    }

    fn set(&mut self, key: &str, value: ContextValue) {
        let key = key.to_ascii_lowercase();
        match self.position(&key) {
            Ok(i) => {
                if let Some(entry) = self.entries.get_mut(i) {
                    entry.1 = value;
                }
            }
            Err(i) => self.entries.insert(i, (key.into_boxed_str(), value)),
        }
    }

    fn position(&self, lower_key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| (**k).cmp(lower_key))
    }
}

/// `aws:RequestTag/*`, `aws:ResourceTag/*`, `aws:PrincipalTag/*` (lower-cased).
fn is_tag_key(lower_key: &str) -> bool {
    ["aws:requesttag/", "aws:resourcetag/", "aws:principaltag/"]
        .iter()
        .any(|p| lower_key.starts_with(p))
}
