//! Topics (`sns`): the API's shapes and errors, Publish's checks, filter policies in both
//! scopes, and delivery to in-process functions (SNS's Lambda event), application queues,
//! confirmed and signed webhooks, and from an EventBridge rule through a topic.

use std::time::Duration;

use codekeep::events::webhook;
use codekeep::{Caller, Client, Keep};
use serde_json::{Value, json};

use crate::webhooks::{Receiver, allow_loopback, now_seconds};

/// A keep with quick retries, an account, and its `sns` client.
fn keep() -> (Keep, String, Client) {
    crate::quick_retry_keep("sns")
}

use crate::{recorder, wait_until};

#[test]
fn topics_have_sns_shapes_and_errors() {
    let (_keep, account, sns) = keep();
    let arn = sns.call("CreateTopic", json!({"Name": "builds"})).unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(arn, format!("arn:aws:sns:us-east-1:{account}:builds"));
    // Idempotent.
    let again = sns.call("CreateTopic", json!({"Name": "builds"})).unwrap();
    assert_eq!(again["TopicArn"], arn.as_str());
    for bad in ["", "has space", "dot.name", &"x".repeat(257)] {
        let e = sns.call("CreateTopic", json!({"Name": bad})).unwrap_err();
        assert_eq!(e.code(), "InvalidParameter", "{bad}");
        assert_eq!(e.message(), "Invalid parameter: Topic Name");
    }
    let listed = sns.call("ListTopics", json!({})).unwrap();
    assert_eq!(listed["Topics"], json!([{"TopicArn": arn}]));
    let attributes = sns
        .call("GetTopicAttributes", json!({"TopicArn": arn}))
        .unwrap();
    assert_eq!(attributes["Attributes"]["Owner"], account.as_str());
    assert_eq!(attributes["Attributes"]["SubscriptionsConfirmed"], "0");
    let missing = format!("arn:aws:sns:us-east-1:{account}:nope");
    let e = sns
        .call("Publish", json!({"TopicArn": missing, "Message": "x"}))
        .unwrap_err();
    assert_eq!(e.code(), "NotFound");
    let e = sns
        .call(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "email", "Endpoint": "a@example.com"}),
        )
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter");

    // Publish's checks.
    let publish = |input: Value| sns.call("Publish", input).unwrap_err();
    let e = publish(json!({"TopicArn": arn, "Message": ""}));
    assert_eq!(e.message(), "Invalid parameter: Empty message");
    let e = publish(json!({"TopicArn": arn, "Message": "m", "Subject": "x".repeat(101)}));
    assert_eq!(e.message(), "Invalid parameter: Subject");
    let e = publish(json!({"TopicArn": arn, "Message": "m", "Subject": "two\nlines"}));
    assert_eq!(e.message(), "Invalid parameter: Subject");
    let eleven: serde_json::Map<String, Value> = (0..11)
        .map(|i| {
            (
                format!("a{i}"),
                json!({"DataType": "String", "StringValue": "v"}),
            )
        })
        .collect();
    let e = publish(json!({"TopicArn": arn, "Message": "m", "MessageAttributes": eleven}));
    assert!(
        e.message().contains("exceeds the allowed maximum [10]"),
        "{e}"
    );
    let e = publish(json!({"TopicArn": arn, "Message": "m",
        "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "ten"}}}));
    assert!(
        e.message()
            .contains("Could not cast message attribute 'n' value to number")
    );
    let e = publish(
        json!({"TopicArn": arn, "Message": "{\"lambda\": \"x\"}", "MessageStructure": "json"}),
    );
    assert!(e.message().contains("No default entry"), "{e}");
    let e = publish(json!({"TopicArn": arn, "Message": "m",
        "MessageAttributes": {"AWS.reserved": {"DataType": "String", "StringValue": "v"}}}));
    assert_eq!(e.code(), "InvalidParameter");
    let ok = sns
        .call(
            "Publish",
            json!({"TopicArn": arn, "Message": "nobody listens"}),
        )
        .unwrap();
    assert_eq!(ok["MessageId"].as_str().unwrap().len(), 36);
    sns.call("DeleteTopic", json!({"TopicArn": arn})).unwrap();
    // Deleting again succeeds, as in SNS.
    sns.call("DeleteTopic", json!({"TopicArn": arn})).unwrap();
    assert_eq!(
        sns.call("ListTopics", json!({})).unwrap()["Topics"],
        json!([])
    );
}

#[test]
fn functions_and_application_queues_receive_what_their_filter_policies_pass() {
    let (keep, account, sns) = keep();
    let arn = sns.call("CreateTopic", json!({"Name": "orders"})).unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = recorder(&keep, &account, "on-order");
    let function = format!("arn:aws:lambda:us-east-1:{account}:function:on-order");
    let sub = sns
        .call(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "lambda", "Endpoint": function,
                   "Attributes": {"FilterPolicy": "{\"store\": [\"example_corp\"], \"price\": [{\"numeric\": [\">=\", 100]}]}"}}),
        )
        .unwrap()["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sub.starts_with(&format!("{arn}:")));
    // A bad policy is refused with SNS's reason.
    let e = sns
        .call(
            "SetSubscriptionAttributes",
            json!({"SubscriptionArn": sub, "AttributeName": "FilterPolicy",
                   "AttributeValue": "{\"a\": {\"b\": [\"c\"]}}"}),
        )
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter");
    assert!(
        e.message()
            .contains("does not support nested filter policy"),
        "{e}"
    );
    // The application queue filters on the body.
    sns.call(
        "Subscribe",
        json!({"TopicArn": arn, "Protocol": "application", "Endpoint": "order-log",
               "Attributes": {"FilterPolicyScope": "MessageBody",
                              "FilterPolicy": "{\"order\": {\"kind\": [{\"prefix\": \"big\"}]}}",
                              "RawMessageDelivery": "true"}}),
    )
    .unwrap();
    let attrs = |store: &str, price: &str| {
        json!({"store": {"DataType": "String", "StringValue": store},
               "price": {"DataType": "Number", "StringValue": price}})
    };
    let publish = |message: &Value, attributes: Value| {
        sns.call(
            "Publish",
            json!({"TopicArn": arn, "Message": message.to_string(), "Subject": "Order",
                   "MessageAttributes": attributes}),
        )
        .unwrap()["MessageId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let big = publish(
        &json!({"order": {"kind": "bigger"}}),
        attrs("example_corp", "210.75"),
    );
    publish(
        &json!({"order": {"kind": "small"}}),
        attrs("example_corp", "99"),
    );
    publish(
        &json!({"order": {"kind": "big"}}),
        attrs("other_corp", "500"),
    );
    wait_until("the function's delivery", || {
        !seen.lock().unwrap().is_empty()
    });
    wait_until("two queued messages", || {
        keep.application_messages(&account, "order-log", 10)
            .unwrap()
            .len()
            == 2
    });
    std::thread::sleep(Duration::from_millis(200));
    let calls = seen.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        1,
        "only the first message passes the function's policy"
    );
    let record = &calls[0]["Records"][0];
    assert_eq!(record["EventSource"], "aws:sns");
    assert_eq!(record["EventSubscriptionArn"], sub.as_str());
    assert_eq!(record["Sns"]["MessageId"], big.as_str());
    assert_eq!(record["Sns"]["Subject"], "Order");
    assert_eq!(record["Sns"]["Type"], "Notification");
    assert_eq!(
        record["Sns"]["MessageAttributes"]["price"],
        json!({"Type": "Number", "Value": "210.75"})
    );
    let queued = keep
        .application_messages(&account, "order-log", 10)
        .unwrap();
    let bodies: Vec<Value> = queued
        .iter()
        .map(|m| serde_json::from_str(m["Body"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        bodies[0],
        json!({"order": {"kind": "bigger"}}),
        "raw: the message alone"
    );
    assert_eq!(bodies[1], json!({"order": {"kind": "big"}}));
    let handle = queued[0]["ReceiptHandle"].as_str().unwrap();
    assert!(
        keep.delete_application_message(&account, "order-log", handle)
            .unwrap()
    );
    assert!(
        !keep
            .delete_application_message(&account, "order-log", handle)
            .unwrap()
    );
    assert_eq!(
        keep.application_messages(&account, "order-log", 10)
            .unwrap()
            .len(),
        1
    );

    let got = sns
        .call("GetSubscriptionAttributes", json!({"SubscriptionArn": sub}))
        .unwrap();
    assert_eq!(got["Attributes"]["FilterPolicyScope"], "MessageAttributes");
    assert_eq!(got["Attributes"]["PendingConfirmation"], "false");
    assert_eq!(got["Attributes"]["Protocol"], "lambda");
    sns.call("Unsubscribe", json!({"SubscriptionArn": sub}))
        .unwrap();
    let e = sns
        .call("Unsubscribe", json!({"SubscriptionArn": sub}))
        .unwrap_err();
    assert_eq!(e.code(), "NotFound");
}

#[test]
fn webhook_subscriptions_are_confirmed_then_signed() {
    let (keep, _account, sns) = keep();
    allow_loopback(&keep, Duration::from_secs(2));
    let receiver = Receiver::start(|_| (200, Duration::ZERO));
    let arn = sns.call("CreateTopic", json!({"Name": "hooks"})).unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = sns
        .call(
            "Subscribe",
            json!({"TopicArn": arn, "Protocol": "http", "Endpoint": receiver.url("/sns")}),
        )
        .unwrap();
    assert_eq!(out["SubscriptionArn"], "pending confirmation");
    let secret = out["SigningSecret"].as_str().unwrap().to_owned();
    wait_until("the confirmation request", || receiver.count() == 1);
    let confirmation = &receiver.requests()[0];
    assert_eq!(
        confirmation.header("x-amz-sns-message-type"),
        "SubscriptionConfirmation"
    );
    let verify = |r: &crate::webhooks::Received| {
        webhook::verify(
            &secret,
            r.header("webhook-id"),
            r.header("webhook-timestamp"),
            r.header("webhook-signature"),
            &r.body,
            now_seconds(),
            300,
        )
    };
    verify(confirmation).unwrap();
    let body: Value = serde_json::from_slice(&confirmation.body).unwrap();
    let token = body["Token"].as_str().unwrap();
    // Pending subscriptions get nothing.
    sns.call("Publish", json!({"TopicArn": arn, "Message": "early"}))
        .unwrap();
    let listed = sns
        .call("ListSubscriptionsByTopic", json!({"TopicArn": arn}))
        .unwrap();
    assert_eq!(
        listed["Subscriptions"][0]["SubscriptionArn"],
        "PendingConfirmation"
    );
    let e = sns
        .call(
            "ConfirmSubscription",
            json!({"TopicArn": arn, "Token": "0000"}),
        )
        .unwrap_err();
    assert_eq!(e.code(), "InvalidParameter");
    let confirmed = sns
        .call(
            "ConfirmSubscription",
            json!({"TopicArn": arn, "Token": token}),
        )
        .unwrap()["SubscriptionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(confirmed.starts_with(&format!("{arn}:")));
    sns.call(
        "Publish",
        json!({"TopicArn": arn, "Message": "{\"default\": \"plain\", \"http\": \"for http\"}",
               "MessageStructure": "json", "Subject": "Hi"}),
    )
    .unwrap();
    wait_until("the notification", || receiver.count() == 2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(receiver.count(), 2, "the early message was not delivered");
    let notification = &receiver.requests()[1];
    verify(notification).unwrap();
    assert_eq!(
        notification.header("x-amz-sns-message-type"),
        "Notification"
    );
    assert_eq!(notification.header("x-amz-sns-subscription-arn"), confirmed);
    assert_eq!(notification.header("x-amz-sns-topic-arn"), arn);
    let body: Value = serde_json::from_slice(&notification.body).unwrap();
    assert_eq!(
        body["Message"], "for http",
        "the http entry of the json structure"
    );
    assert_eq!(body["Subject"], "Hi");
    assert_eq!(body["TopicArn"], arn.as_str());
}

#[test]
fn a_rule_publishes_to_a_topic_and_failed_subscriptions_redrive() {
    let (keep, account, sns) = keep();
    let events = keep
        .client("events", Caller::account_root(account.parse().unwrap()))
        .unwrap();
    let arn = sns.call("CreateTopic", json!({"Name": "alerts"})).unwrap()["TopicArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = recorder(&keep, &account, "pager");
    keep.register_function(&account, "broken", |_: &str| Err("down".to_owned()))
        .unwrap();
    let function = |n: &str| format!("arn:aws:lambda:us-east-1:{account}:function:{n}");
    sns.call(
        "Subscribe",
        json!({"TopicArn": arn, "Protocol": "lambda", "Endpoint": function("pager")}),
    )
    .unwrap();
    let dlq = format!("arn:aws:sqs:us-east-1:{account}:sns-dlq");
    sns.call(
        "Subscribe",
        json!({"TopicArn": arn, "Protocol": "lambda", "Endpoint": function("broken"),
               "Attributes": {"RedrivePolicy": json!({"deadLetterTargetArn": dlq}).to_string()}}),
    )
    .unwrap();
    events
        .call(
            "PutRule",
            json!({"Name": "deletes", "EventPattern": json!({"detail-type": ["Branch deleted"]}).to_string()}),
        )
        .unwrap();
    events
        .call(
            "PutTargets",
            json!({"Rule": "deletes", "Targets": [{"Id": "topic", "Arn": arn}]}),
        )
        .unwrap();
    let put = events
        .call(
            "PutEvents",
            json!({"Entries": [{"Source": "my.app", "DetailType": "Branch deleted", "Detail": "{\"b\": 1}"}]}),
        )
        .unwrap();
    let event_id = put["Entries"][0]["EventId"].as_str().unwrap();
    wait_until("the pager", || !seen.lock().unwrap().is_empty());
    let message = seen.lock().unwrap()[0]["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap()
        .to_owned();
    let event: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(event["id"], event_id, "the topic carried the rule's event");
    wait_until("the redrive", || {
        !keep.dead_letters(&dlq).unwrap().is_empty()
    });
    let dead = keep.dead_letters(&dlq).unwrap();
    assert_eq!(dead[0]["Attempts"], 4, "a try and three retries");
    assert!(dead[0]["Error"].as_str().unwrap().contains("down"));
}
