//! The `events` service on the default bus: rules, targets, TestEventPattern and PutEvents,
//! with EventBridge's shapes, limits and error codes; authorization through IAM.

use codekeep::Caller;
use serde_json::{Value, json};

use crate::{code, keep_with_account};

fn envelope(detail: &Value) -> String {
    json!({
        "version": "0", "id": "e1", "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit", "account": "111122223333", "time": "2026-11-26T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": detail
    })
    .to_string()
}

#[test]
fn test_event_pattern_answers_and_refuses_like_eventbridge() {
    let (_keep, _account, events) = keep_with_account("events");
    let pattern = json!({"detail": {"referenceName": [{"prefix": "ma"}]}}).to_string();
    let hit = events
        .call(
            "TestEventPattern",
            json!({"EventPattern": pattern, "Event": envelope(&json!({"referenceName": "main"}))}),
        )
        .unwrap();
    assert_eq!(hit["Result"], true);
    let miss = events
        .call(
            "TestEventPattern",
            json!({"EventPattern": pattern, "Event": envelope(&json!({"referenceName": "dev"}))}),
        )
        .unwrap();
    assert_eq!(miss["Result"], false);
    let bad = events
        .call(
            "TestEventPattern",
            json!({"EventPattern": r#"{"a": [{"numeric": [">", 5, "<", 1]}]}"#, "Event": envelope(&json!({}))}),
        )
        .unwrap_err();
    assert_eq!(bad.code(), "InvalidEventPatternException");
    assert!(
        bad.message().contains("Bottom must be less than top"),
        "{}",
        bad.message()
    );
    let partial = events.call(
        "TestEventPattern",
        json!({"EventPattern": pattern, "Event": r#"{"source": "x"}"#}),
    );
    assert_eq!(code(partial), "ValidationException");
}

#[test]
fn rules_and_targets_follow_eventbridge() {
    let (_keep, account, events) = keep_with_account("events");
    let pattern = json!({"source": ["aws.codecommit"]}).to_string();
    assert_eq!(
        code(events.call("PutRule", json!({"Name": "pushes"}))),
        "ValidationException"
    );
    assert_eq!(
        code(events.call(
            "PutRule",
            json!({"Name": "bad name!", "EventPattern": pattern})
        )),
        "ValidationException"
    );
    assert_eq!(
        code(events.call(
            "PutRule",
            json!({"Name": "r", "EventPattern": "{\"a\": \"x\"}"})
        )),
        "InvalidEventPatternException"
    );
    assert_eq!(
        code(events.call(
            "PutRule",
            json!({"Name": "r", "EventPattern": pattern, "EventBusName": "other"})
        )),
        "ResourceNotFoundException"
    );
    for name in ["pushes-main", "pushes-dev", "deletes"] {
        let arn = events
            .call(
                "PutRule",
                json!({"Name": name, "EventPattern": pattern, "Description": "d"}),
            )
            .unwrap()["RuleArn"]
            .clone();
        assert_eq!(
            arn,
            format!("arn:aws:events:us-east-1:{account}:rule/{name}")
        );
    }
    let rule = events
        .call("DescribeRule", json!({"Name": "pushes-main"}))
        .unwrap();
    assert_eq!(rule["State"], "ENABLED");
    assert_eq!(rule["EventPattern"], pattern);
    assert_eq!(rule["EventBusName"], "default");
    events
        .call("DisableRule", json!({"Name": "pushes-main"}))
        .unwrap();
    assert_eq!(
        events
            .call("DescribeRule", json!({"Name": "pushes-main"}))
            .unwrap()["State"],
        "DISABLED"
    );
    assert_eq!(
        code(events.call("EnableRule", json!({"Name": "nope"}))),
        "ResourceNotFoundException"
    );
    // Listing with a prefix, one page at a time.
    let first = events
        .call("ListRules", json!({"NamePrefix": "pushes", "Limit": 1}))
        .unwrap();
    assert_eq!(first["Rules"].as_array().unwrap().len(), 1);
    let token = first["NextToken"].as_str().unwrap().to_owned();
    let second = events
        .call(
            "ListRules",
            json!({"NamePrefix": "pushes", "Limit": 1, "NextToken": token}),
        )
        .unwrap();
    assert_eq!(second["Rules"].as_array().unwrap().len(), 1);
    assert!(second.get("NextToken").is_none());

    // Targets: at most five, one shape of input each, ARNs codekeep delivers to.
    let function = format!("arn:aws:lambda:us-east-1:{account}:function:notify");
    let targets: Vec<Value> = (0..5)
        .map(|i| json!({"Id": format!("t{i}"), "Arn": function, "RetryPolicy": {"MaximumRetryAttempts": 3}}))
        .collect();
    let put = events
        .call(
            "PutTargets",
            json!({"Rule": "pushes-main", "Targets": targets}),
        )
        .unwrap();
    assert_eq!(put["FailedEntryCount"], 0);
    assert_eq!(
        code(events.call(
            "PutTargets",
            json!({"Rule": "pushes-main", "Targets": [{"Id": "t5", "Arn": function}]})
        )),
        "LimitExceededException"
    );
    assert_eq!(
        code(events.call(
            "PutTargets",
            json!({"Rule": "pushes-dev", "Targets": [{"Id": "x", "Arn": function, "Input": "{}", "InputPath": "$.detail"}]})
        )),
        "ValidationException"
    );
    assert_eq!(
        code(events.call(
            "PutTargets",
            json!({"Rule": "pushes-dev", "Targets": [{"Id": "x", "Arn": "arn:aws:s3:::bucket"}]})
        )),
        "ValidationException"
    );
    assert_eq!(
        code(events.call(
            "PutTargets",
            json!({"Rule": "pushes-dev", "Targets": [{"Id": "x", "Arn": function, "RetryPolicy": {"MaximumRetryAttempts": 186}}]})
        )),
        "ValidationException"
    );
    events
        .call(
            "PutTargets",
            json!({"Rule": "pushes-dev", "Targets": [{"Id": "shaped", "Arn": function,
                "InputTransformer": {"InputPathsMap": {"ref": "$.detail.referenceName"}, "InputTemplate": "\"pushed <ref>\""}}]}),
        )
        .unwrap();
    let listed = events
        .call("ListTargetsByRule", json!({"Rule": "pushes-main"}))
        .unwrap();
    assert_eq!(listed["Targets"].as_array().unwrap().len(), 5);
    assert_eq!(
        listed["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"],
        3
    );
    // A rule with targets cannot be deleted; without them it can, and deleting twice is fine.
    assert_eq!(
        code(events.call("DeleteRule", json!({"Name": "pushes-main"}))),
        "ValidationException"
    );
    let ids: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    events
        .call("RemoveTargets", json!({"Rule": "pushes-main", "Ids": ids}))
        .unwrap();
    events
        .call("DeleteRule", json!({"Name": "pushes-main"}))
        .unwrap();
    events
        .call("DeleteRule", json!({"Name": "pushes-main"}))
        .unwrap();
    assert_eq!(
        code(events.call("DescribeRule", json!({"Name": "pushes-main"}))),
        "ResourceNotFoundException"
    );
}

#[test]
fn put_events_appends_to_the_outbox_with_per_entry_results() {
    let (keep, account, events) = keep_with_account("events");
    let out = events
        .call(
            "PutEvents",
            json!({"Entries": [
                {"Source": "my.app", "DetailType": "Build Done", "Detail": "{\"ok\": true}", "Resources": ["arn:aws:codecommit:us-east-1:111122223333:web"]},
                {"Source": "aws.codecommit", "DetailType": "x", "Detail": "{}"},
                {"Source": "my.app", "DetailType": "x", "Detail": "not json"},
                {"DetailType": "x", "Detail": "{}"}
            ]}),
        )
        .unwrap();
    assert_eq!(out["FailedEntryCount"], 3);
    let entries = out["Entries"].as_array().unwrap();
    let id = entries[0]["EventId"].as_str().unwrap().to_owned();
    assert_eq!(entries[1]["ErrorCode"], "NotAuthorizedForSourceException");
    assert_eq!(entries[2]["ErrorCode"], "MalformedDetail");
    assert_eq!(entries[3]["ErrorCode"], "InvalidArgument");
    let delivered = keep.read_events("test-consumer", 100).unwrap();
    let event = delivered
        .iter()
        .map(|e| &e["Event"])
        .find(|e| e["id"] == id.as_str())
        .expect("the accepted entry is in the outbox");
    assert_eq!(event["source"], "my.app");
    assert_eq!(event["detail-type"], "Build Done");
    assert_eq!(event["account"], account.as_str());
    assert_eq!(event["detail"], json!({"ok": true}));
    assert_eq!(
        code(events.call("PutEvents", json!({"Entries": []}))),
        "ValidationException"
    );
}

#[test]
fn events_calls_are_authorized_by_iam() {
    let (keep, account, _) = keep_with_account("events");
    let iam = keep
        .client("iam", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    iam.call("CreateUser", json!({"UserName": "dev"})).unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["events:DescribeRule", "events:PutRule"], "Resource": format!("arn:aws:events:*:{account}:rule/team-*")}]});
    iam.call(
        "PutUserPolicy",
        json!({"UserName": "dev", "PolicyName": "p", "PolicyDocument": policy.to_string()}),
    )
    .unwrap();
    let dev = keep
        .client("events", Caller::iam_user(account.parse().unwrap(), "dev"))
        .unwrap();
    let pattern = json!({"source": ["my.app"]}).to_string();
    dev.call(
        "PutRule",
        json!({"Name": "team-a", "EventPattern": pattern}),
    )
    .unwrap();
    assert_eq!(
        code(dev.call("PutRule", json!({"Name": "other", "EventPattern": pattern}))),
        "AccessDeniedException"
    );
    assert_eq!(
        code(dev.call(
            "PutEvents",
            json!({"Entries": [{"Source": "my.app", "DetailType": "x", "Detail": "{}"}]})
        )),
        "AccessDeniedException"
    );
}
