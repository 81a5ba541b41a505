//! Events: EventBridge's pattern language ([`pattern`]), and (to come) rules, targets and
//! the dispatcher that drains the outbox.

pub mod pattern;
