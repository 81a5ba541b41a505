use codekeep::store::Key;
use serde_json::{Value, json};

use crate::{code, keep_with_account};

fn record_key(seq: u64) -> Key {
    Key::new("audit").push("r").push_u64(seq)
}

/// A keep whose log holds some records: account creation plus `n` KMS calls.
fn keep_with_records(n: usize) -> codekeep::Keep {
    let (keep, _account, kms) = keep_with_account("kms");
    for i in 0..n {
        kms.call("CreateKey", json!({"Description": format!("key {i}")}))
            .unwrap();
    }
    keep
}

#[test]
fn every_call_is_recorded_in_cloudtrail_shape_without_secrets() {
    let (keep, account, kms) = keep_with_account("kms");
    let id = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let dk = kms
        .call(
            "GenerateDataKey",
            json!({"KeyId": id, "KeySpec": "AES_256", "EncryptionContext": {"k": "v"}}),
        )
        .unwrap();
    let _ = kms.call("DescribeKey", json!({"KeyId": "alias/missing"}));
    let recent = keep.audit().recent(3).unwrap();
    assert_eq!(recent[0]["eventName"], "DescribeKey");
    assert_eq!(recent[0]["errorCode"], "NotFoundException");
    let gdk = &recent[1];
    assert_eq!(gdk["eventName"], "GenerateDataKey");
    assert_eq!(gdk["eventSource"], "kms.amazonaws.com");
    assert_eq!(gdk["userIdentity"]["type"], "Root");
    assert_eq!(gdk["userIdentity"]["accountId"], account.as_str());
    assert_eq!(gdk["recipientAccountId"], account.as_str());
    assert_eq!(gdk["readOnly"], true);
    assert_eq!(gdk["requestParameters"]["EncryptionContext"]["k"], "v");
    assert_eq!(gdk["resources"][0]["type"], "AWS::KMS::Key");
    for field in [
        "eventVersion",
        "eventTime",
        "awsRegion",
        "sourceIPAddress",
        "userAgent",
        "requestID",
        "eventID",
    ] {
        assert!(gdk.get(field).is_some(), "{field}");
    }
    let all = serde_json::to_string(&recent).unwrap();
    assert!(
        !all.contains(dk["Plaintext"].as_str().unwrap()),
        "plaintext data key leaked into the audit log"
    );
    assert!(!all.contains(dk["CiphertextBlob"].as_str().unwrap()));
}

#[test]
fn denied_calls_are_recorded() {
    let (keep, _account, kms) = keep_with_account("kms");
    let arn = kms.call("CreateKey", json!({})).unwrap()["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_other, kms2) = crate::account_client(&keep, "kms");
    assert_eq!(
        code(kms2.call("DisableKey", json!({"KeyId": arn}))),
        "AccessDeniedException"
    );
    let last = &keep.audit().recent(1).unwrap()[0];
    assert_eq!(last["eventName"], "DisableKey");
    assert_eq!(last["errorCode"], "AccessDeniedException");
    assert_eq!(
        kms.call("DescribeKey", json!({"KeyId": arn})).unwrap()["KeyMetadata"]["KeyState"],
        "Enabled"
    );
}

#[test]
fn verification_passes_on_an_honest_log_with_checkpoints() {
    let keep = keep_with_records(1200);
    let report = keep.verify_audit_log().unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.records_checked, 1201);
    assert_eq!(report.checkpoints_checked, 1);
    assert_eq!(report.records_after_last_checkpoint, 201);
    keep.audit().checkpoint().unwrap().unwrap();
    let report = keep.verify_audit_log().unwrap();
    assert_eq!(report.records_after_last_checkpoint, 0);
}

#[test]
fn verification_names_a_modified_record() {
    let keep = keep_with_records(10);
    keep.meta()
        .txn(|t| {
            let mut v = t.get(&record_key(5))?.unwrap();
            let pos = v.windows(7).position(|w| w == b"key 3\"}").unwrap();
            v[pos + 4] = b'9';
            t.put(&record_key(5), &v)
        })
        .unwrap();
    let report = keep.verify_audit_log().unwrap();
    assert!(!report.valid);
    let bad = report.first_invalid.unwrap();
    assert_eq!(bad.seq, 5);
    assert!(bad.problem.contains("modified"), "{}", bad.problem);
}

#[test]
fn verification_names_a_deleted_record() {
    let keep = keep_with_records(10);
    keep.meta()
        .txn(|t| t.delete(&record_key(4)).map(drop))
        .unwrap();
    let bad = keep.verify_audit_log().unwrap().first_invalid.unwrap();
    assert_eq!(bad.seq, 4);
    assert!(bad.problem.contains("missing"), "{}", bad.problem);
}

#[test]
fn verification_names_reordered_and_inserted_records() {
    let keep = keep_with_records(10);
    keep.meta()
        .txn(|t| {
            let a = t.get(&record_key(6))?.unwrap();
            let b = t.get(&record_key(7))?.unwrap();
            t.put(&record_key(6), &b)?;
            t.put(&record_key(7), &a)
        })
        .unwrap();
    assert_eq!(
        keep.verify_audit_log().unwrap().first_invalid.unwrap().seq,
        6
    );

    let keep = keep_with_records(10);
    keep.meta()
        .txn(|t| {
            // Shift records 3.. up by one and insert a copy of record 2 at position 3.
            for seq in (3..=11).rev() {
                let v = t.get(&record_key(seq))?.unwrap();
                t.put(&record_key(seq + 1), &v)?;
            }
            let two = t.get(&record_key(2))?.unwrap();
            t.put(&record_key(3), &two)
        })
        .unwrap();
    assert_eq!(
        keep.verify_audit_log().unwrap().first_invalid.unwrap().seq,
        3
    );
}

#[test]
fn verification_reports_a_truncated_tail() {
    let keep = keep_with_records(10);
    keep.meta()
        .txn(|t| {
            t.delete(&record_key(11))?;
            t.delete(&record_key(10)).map(drop)
        })
        .unwrap();
    let report = keep.verify_audit_log().unwrap();
    assert!(report.truncated);
    assert_eq!(report.first_invalid.unwrap().seq, 10);
}

#[test]
fn lookup_events_filters_and_pages() {
    let (keep, account, kms) = keep_with_account("kms");
    for _ in 0..5 {
        kms.call("CreateKey", json!({})).unwrap();
    }
    let trail = keep
        .client(
            "cloudtrail",
            codekeep::Caller::account_root(account.parse().unwrap()),
        )
        .unwrap();
    let out = trail.call("LookupEvents", json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateKey"}], "MaxResults": 3})).unwrap();
    let events = out["Events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e["EventName"] == "CreateKey" && e["Username"] == "root")
    );
    let record: Value =
        serde_json::from_str(events[0]["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(record["eventName"], "CreateKey");
    let next = trail.call("LookupEvents", json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateKey"}], "MaxResults": 3, "NextToken": out["NextToken"]})).unwrap();
    assert_eq!(next["Events"].as_array().unwrap().len(), 2);
    assert!(next.get("NextToken").is_none());
    let ro = trail
        .call(
            "LookupEvents",
            json!({"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "true"}]}),
        )
        .unwrap();
    assert!(
        ro["Events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ReadOnly"] == "true")
    );
    assert_eq!(
        code(trail.call(
            "LookupEvents",
            json!({"LookupAttributes": [{"AttributeKey": "Nope", "AttributeValue": "x"}]})
        )),
        "InvalidLookupAttributesException"
    );
    assert_eq!(
        code(trail.call("LookupEvents", json!({"MaxResults": 51}))),
        "InvalidMaxResultsException"
    );
}

#[test]
fn export_is_json_lines() {
    let keep = keep_with_records(3);
    let mut out = Vec::new();
    assert_eq!(keep.audit().export_jsonl(&mut out).unwrap(), 4);
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["codekeep"]["seq"], 1);
    assert!(lines.last().unwrap()["checkpointPublicKey"].is_string());
}
