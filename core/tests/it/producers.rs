//! The events's producers besides git's own: `AWS API Call via CloudTrail` for write calls
//! (denied ones included), KMS's key events, and CodeCommit repository triggers, each reaching
//! an in-process function.

use std::time::Duration;

use codekeep::{Caller, Client, Keep};
use serde_json::{Value, json};

use crate::{recorder, wait_until};

/// A rule sending what `pattern` matches to `function`.
fn rule(events: &Client, name: &str, pattern: &Value, function: &str) {
    crate::rule(
        events,
        name,
        pattern,
        &json!([{"Id": "f", "Arn": function}]),
    );
}

#[test]
fn write_calls_and_denied_calls_become_cloudtrail_events() {
    let keep = Keep::memory().unwrap();
    let (account, iam) = crate::account_client(&keep, "iam");
    let root = Caller::account_root(account.parse().unwrap());
    let events = keep.client("events", root.clone()).unwrap();
    let seen = recorder(&keep, &account, "audit-watch");
    let function = format!("arn:aws:lambda:us-east-1:{account}:function:audit-watch");
    rule(
        &events,
        "user-changes",
        &json!({"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
                "detail": {"eventName": ["CreateUser", "DeleteUser"]}}),
        &function,
    );
    rule(
        &events,
        "denied",
        &json!({"detail-type": ["AWS API Call via CloudTrail"],
                "detail": {"errorCode": [{"prefix": "AccessDenied"}]}}),
        &function,
    );
    iam.call("CreateUser", json!({"UserName": "mallory"}))
        .unwrap();
    iam.call("ListUsers", json!({})).unwrap();
    let as_mallory = keep
        .client("iam", Caller::iam_user(account.parse().unwrap(), "mallory"))
        .unwrap();
    as_mallory
        .call("CreateUser", json!({"UserName": "eve"}))
        .unwrap_err();
    // The denied CreateUser matches both rules.
    wait_until("three deliveries", || seen.lock().unwrap().len() >= 3);
    std::thread::sleep(Duration::from_millis(300));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "ListUsers is read-only and not sent: {seen:#?}"
    );
    let created = seen
        .iter()
        .find(|e| e["detail"]["errorCode"].is_null())
        .unwrap();
    assert_eq!(created["source"], "aws.iam");
    assert_eq!(created["detail"]["eventName"], "CreateUser");
    assert_eq!(
        created["detail"]["requestParameters"]["UserName"],
        "mallory"
    );
    assert_eq!(created["detail"]["eventSource"], "iam.amazonaws.com");
    let denied = seen
        .iter()
        .find(|e| !e["detail"]["errorCode"].is_null())
        .unwrap();
    assert_eq!(denied["detail"]["eventName"], "CreateUser");
    assert!(
        denied["detail"]["userIdentity"]["arn"]
            .as_str()
            .unwrap()
            .ends_with(":user/mallory")
    );
}

#[test]
fn kms_rotation_and_deletion_are_events() {
    let (clock, keep) = crate::keep_with_clock();
    let (account, kms) = crate::account_client(&keep, "kms");
    let events = keep
        .client("events", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let seen = recorder(&keep, &account, "key-watch");
    rule(
        &events,
        "keys",
        &json!({"source": ["aws.kms"], "detail-type": ["KMS CMK Rotation", "KMS CMK Deletion"]}),
        &format!("arn:aws:lambda:us-east-1:{account}:function:key-watch"),
    );
    let rotating = crate::create_key(&kms);
    kms.call(
        "EnableKeyRotation",
        json!({"KeyId": rotating, "RotationPeriodInDays": 90}),
    )
    .unwrap();
    let doomed = crate::create_key(&kms);
    kms.call(
        "ScheduleKeyDeletion",
        json!({"KeyId": doomed, "PendingWindowInDays": 7}),
    )
    .unwrap();
    clock.advance(91 * 86_400_000);
    kms.call("Encrypt", json!({"KeyId": rotating, "Plaintext": "aGk="}))
        .unwrap();
    wait_until("both key events", || seen.lock().unwrap().len() >= 2);
    let seen = seen.lock().unwrap().clone();
    let of = |t: &str| seen.iter().find(|e| e["detail-type"] == t).unwrap().clone();
    let rotation = of("KMS CMK Rotation");
    assert_eq!(rotation["detail"]["key-id"], rotating.as_str());
    assert!(
        rotation["resources"][0]
            .as_str()
            .unwrap()
            .ends_with(&rotating)
    );
    assert_eq!(of("KMS CMK Deletion")["detail"]["key-id"], doomed.as_str());
}

#[cfg(feature = "server")]
#[test]
fn repository_triggers_reach_functions_and_topics() {
    use crate::git_support::{Fixture, allow_all, commit_file};
    let f = Fixture::new(&allow_all());
    let root = Caller::account_root(f.account.parse().unwrap());
    let cc = f.keep.client("codecommit", root.clone()).unwrap();
    let sns = f.keep.client("sns", root).unwrap();
    let on_main = recorder(&f.keep, &f.account, "on-main");
    let via_topic = recorder(&f.keep, &f.account, "via-topic");
    let function = |n: &str| format!("arn:aws:lambda:us-east-1:{}:function:{n}", f.account);
    let topic = sns
        .call("CreateTopic", json!({"Name": "new-refs"}))
        .unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    sns.call(
        "Subscribe",
        json!({"TopicArn": topic, "Protocol": "lambda", "Endpoint": function("via-topic")}),
    )
    .unwrap();

    // CodeCommit's checks.
    let put = |triggers: Value| {
        cc.call(
            "PutRepositoryTriggers",
            json!({"repositoryName": "web", "triggers": triggers}),
        )
    };
    let code = |r: codekeep::Result<Value>| r.unwrap_err().code().to_owned();
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"name": format!("t{i}"), "destinationArn": function("on-main"), "events": ["all"]}))
        .collect();
    assert_eq!(
        code(put(json!(eleven))),
        "MaximumRepositoryTriggersExceededException"
    );
    assert_eq!(
        code(put(
            json!([{"name": "a", "destinationArn": function("on-main"), "events": ["all", "createReference"]}])
        )),
        "InvalidRepositoryTriggerEventsException"
    );
    assert_eq!(
        code(put(
            json!([{"name": "a", "destinationArn": function("on-main"), "events": []}])
        )),
        "RepositoryTriggerEventsListRequiredException"
    );
    assert_eq!(
        code(put(
            json!([{"name": "a", "destinationArn": "arn:aws:sqs:us-east-1:111122223333:q", "events": ["all"]}])
        )),
        "InvalidRepositoryTriggerDestinationArnException"
    );
    assert_eq!(
        code(put(
            json!([{"destinationArn": function("on-main"), "events": ["all"]}])
        )),
        "RepositoryTriggerNameRequiredException"
    );
    let branches: Vec<String> = (0..11).map(|i| format!("b{i}")).collect();
    assert_eq!(
        code(put(
            json!([{"name": "a", "destinationArn": function("on-main"), "events": ["all"], "branches": branches}])
        )),
        "MaximumBranchesExceededException"
    );
    assert_eq!(
        code(put(
            json!([{"name": "a", "destinationArn": function("on-main"), "events": ["all"], "customData": "x".repeat(1001)}])
        )),
        "InvalidRepositoryTriggerCustomDataException"
    );

    let triggers = json!([
        {"name": "main-changes", "destinationArn": function("on-main"), "events": ["all"],
         "branches": ["main"], "customData": "deploy"},
        {"name": "new-refs", "destinationArn": topic, "events": ["createReference"]},
    ]);
    let config = put(triggers.clone()).unwrap()["configurationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = cc
        .call("GetRepositoryTriggers", json!({"repositoryName": "web"}))
        .unwrap();
    assert_eq!(got["configurationId"], config.as_str());
    assert_eq!(got["triggers"][0]["name"], "main-changes");
    assert_eq!(got["triggers"][1]["branches"], json!([]));

    let local = f.local_repo("origin");
    f.git_ok(&local, &["push", &f.url("web"), "main"]);
    commit_file(&f, &local, "b.txt", "b", "second");
    f.git_ok(&local, &["push", &f.url("web"), "main", "main:feature"]);
    wait_until("main's two pushes", || on_main.lock().unwrap().len() >= 2);
    wait_until("two created refs via the topic", || {
        via_topic.lock().unwrap().len() >= 2
    });
    std::thread::sleep(Duration::from_millis(200));
    let main = on_main.lock().unwrap().clone();
    assert_eq!(main.len(), 2, "{main:#?}");
    let first = &main
        .iter()
        .find(|p| p["Records"][0]["codecommit"]["references"][0]["created"] == true)
        .unwrap()["Records"][0];
    assert_eq!(first["eventName"], "ReferenceChanges");
    assert_eq!(first["eventSource"], "aws:codecommit");
    assert_eq!(first["eventTriggerName"], "main-changes");
    assert_eq!(first["eventTriggerConfigId"], config.as_str());
    assert_eq!(first["customData"], "deploy");
    assert!(first["eventSourceARN"].as_str().unwrap().ends_with(":web"));
    assert_eq!(
        first["codecommit"]["references"][0]["ref"],
        "refs/heads/main"
    );
    // The second push moved main and created feature: main's trigger lists main only.
    let second = main
        .iter()
        .find(|p| p["Records"][0]["codecommit"]["references"][0]["created"].is_null())
        .unwrap();
    let refs = second["Records"][0]["codecommit"]["references"]
        .as_array()
        .unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0]["ref"], "refs/heads/main");
    // The topic's trigger saw the two creations, each as an SNS message holding the payload.
    let created: Vec<String> = via_topic
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            let payload: Value =
                serde_json::from_str(m["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
            payload["Records"][0]["codecommit"]["references"][0]["ref"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(created.contains(&"refs/heads/main".to_owned()));
    assert!(created.contains(&"refs/heads/feature".to_owned()));

    // TestRepositoryTriggers sends TriggerEventTest to destinations that exist.
    let tested = cc
        .call(
            "TestRepositoryTriggers",
            json!({"repositoryName": "web", "triggers": [
                {"name": "ok", "destinationArn": function("on-main"), "events": ["all"]},
                {"name": "nobody", "destinationArn": function("nobody"), "events": ["all"]},
            ]}),
        )
        .unwrap();
    assert_eq!(tested["successfulExecutions"], json!(["ok"]));
    assert_eq!(tested["failedExecutions"][0]["trigger"], "nobody");
    wait_until("the test event", || on_main.lock().unwrap().len() >= 3);
    assert_eq!(
        on_main.lock().unwrap()[2]["Records"][0]["eventName"],
        "TriggerEventTest"
    );
}
