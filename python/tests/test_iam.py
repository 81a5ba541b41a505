"""IAM, STS and MFA from Python, checked against independent implementations: TOTP codes from
pyotp, request signatures from botocore's SigV4 signer."""

import base64
import json
import time

import pyotp
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import codekeep


@pytest.fixture()
def keep():
    with codekeep.Keep.memory() as k:
        yield k


def allow(*actions, resource="*"):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]})


def test_a_user_in_a_group_is_allowed_and_denied_with_reasons(keep):
    account = keep.create_account("py")["Id"]
    iam = keep.client("iam", account=account)
    iam.create_user(UserName="alice", Tags=[{"Key": "team", "Value": "red"}])
    iam.create_group(GroupName="readers")
    iam.add_user_to_group(GroupName="readers", UserName="alice")
    iam.put_group_policy(GroupName="readers", PolicyName="list", PolicyDocument=allow("iam:List*"))
    alice = keep.client("iam", account=account, user="alice")
    assert [u["UserName"] for u in alice.list_users()["Users"]] == ["alice"]
    with pytest.raises(alice.exceptions.AccessDeniedException) as denied:
        alice.create_user(UserName="mallory")
    assert denied.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{account}:user/alice is not authorized to perform: iam:CreateUser "
        f"on resource: arn:aws:iam::{account}:user/mallory because no identity-based policy "
        "allows the iam:CreateUser action")
    decision = keep.authorize("iam:CreateUser", f"arn:aws:iam::{account}:user/mallory",
                              account=account, user="alice")
    assert decision["EvalDecision"] == "implicitDeny"
    allowed = keep.authorize("iam:ListUsers", account=account, user="alice")
    assert allowed["EvalDecision"] == "allowed"
    assert allowed["MatchedStatements"][0]["SourcePolicyId"].endswith("inline policy list")
    with pytest.raises(iam.exceptions.MalformedPolicyDocument):
        iam.create_policy(PolicyName="bad", PolicyDocument='{"Statement": []}')
    # boto3's names for IAM's error shapes catch the same errors.
    with pytest.raises(iam.exceptions.NoSuchEntityException) as missing:
        iam.get_user(UserName="nobody")
    assert missing.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException):
        iam.create_user(UserName="ALICE")


def test_mfa_codes_from_pyotp_and_a_cross_account_role(keep):
    owner = keep.create_account("owner")["Id"]
    other = keep.create_account("other")["Id"]
    owner_iam = keep.client("iam", account=owner)
    other_iam = keep.client("iam", account=other)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{other}:root"}, "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]})
    role_arn = owner_iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    owner_iam.put_role_policy(RoleName="deploy", PolicyName="read", PolicyDocument=allow("iam:GetRole"))
    other_iam.create_user(UserName="dev")
    other_iam.put_user_policy(UserName="dev", PolicyName="assume", PolicyDocument=allow("sts:AssumeRole", resource=role_arn))

    device = other_iam.create_virtual_mfa_device(VirtualMFADeviceName="dev-phone")["VirtualMFADevice"]
    seed = base64.b64decode(device["Base32StringSeed"]).decode()
    totp = pyotp.TOTP(seed)  # RFC 6238: SHA-1, 30 s, 6 digits
    now = time.time()
    other_iam.enable_mfa_device(UserName="dev", SerialNumber=device["SerialNumber"],
                                AuthenticationCode1=totp.at(now - 30), AuthenticationCode2=totp.at(now))
    assert other_iam.list_mfa_devices(UserName="dev")["MFADevices"][0]["SerialNumber"] == device["SerialNumber"]

    sts = keep.client("sts", account=other, user="dev")
    with pytest.raises(codekeep.ClientError) as no_mfa:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="ship")
    assert no_mfa.value.response["Error"]["Code"] == "AccessDeniedException"
    # The next step's code (one step of skew is allowed): the enabling codes are used up.
    code = totp.at(now + 30)
    out = sts.assume_role(RoleArn=role_arn, RoleSessionName="ship",
                          SerialNumber=device["SerialNumber"], TokenCode=code)
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    with pytest.raises(codekeep.ClientError) as reused:
        sts.assume_role(RoleArn=role_arn, RoleSessionName="again",
                        SerialNumber=device["SerialNumber"], TokenCode=code)
    assert reused.value.response["Error"]["Code"] == "AccessDenied"

    as_role = keep.client("sts", credentials=creds)
    assert as_role.get_caller_identity()["Arn"] == f"arn:aws:sts::{owner}:assumed-role/deploy/ship"
    role_iam = keep.client("iam", credentials=creds)
    assert role_iam.get_role(RoleName="deploy")["Role"]["Arn"] == role_arn
    with pytest.raises(role_iam.exceptions.AccessDeniedException):
        role_iam.list_users()


def sign(method, url, body, creds, region="us-east-1", service="iam"):
    """Signs with botocore's own SigV4 implementation, as boto3 would."""
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(creds, service, region).add_auth(request)
    prepared = request.prepare()
    path, _, query = prepared.url.split("://", 1)[1].partition("/")[2].partition("?")
    headers = [[k, v] for k, v in prepared.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.append(["Host", prepared.url.split("://", 1)[1].split("/", 1)[0]])
    return {"Method": method, "Path": "/" + path, "Query": query, "Headers": headers, "Body": body}


def test_sigv4_signatures_made_by_botocore_are_verified(keep):
    account = keep.create_account("py")["Id"]
    iam = keep.client("iam", account=account)
    iam.create_user(UserName="ci")
    iam.put_user_policy(UserName="ci", PolicyName="self", PolicyDocument=allow("iam:GetUser"))
    key = iam.create_access_key(UserName="ci")["AccessKey"]
    creds = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    body = b"Action=GetUser&Version=2010-05-08"
    signed = sign("POST", "https://iam.amazonaws.com/", body, creds)
    client = keep.client("iam", signed_request=signed)
    assert client.get_user()["User"]["UserName"] == "ci"

    # A query string with characters that need encoding, and a path.
    signed = sign("GET", "https://iam.amazonaws.com/a%20b/?UserName=ci&Action=GetUser&Version=2010-05-08", b"", creds)
    assert keep.client("iam", signed_request=signed).get_user(UserName="ci")["User"]["UserName"] == "ci"
    # A signature proves one request: not another operation, nor other input.
    with pytest.raises(codekeep.ClientError) as other_call:
        keep.client("iam", signed_request=signed).get_user(UserName="someone-else")
    assert other_call.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(codekeep.ClientError):
        keep.client("iam", signed_request=signed).list_users()

    tampered = dict(signed, Body=b"Action=CreateUser")
    with pytest.raises(codekeep.ClientError) as bad:
        keep.client("iam", signed_request=tampered).get_user()
    assert bad.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    wrong_secret = sign("POST", "https://iam.amazonaws.com/", body, Credentials(key["AccessKeyId"], "x" * 40))
    with pytest.raises(codekeep.ClientError) as bad:
        keep.client("iam", signed_request=wrong_secret).get_user()
    assert bad.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    wrong_region = sign("POST", "https://iam.amazonaws.com/", body, creds, region="eu-west-1")
    with pytest.raises(codekeep.ClientError):
        keep.client("iam", signed_request=wrong_region).get_user()

    # Temporary credentials sign with their session token.
    session = keep.client("sts", credentials={"AccessKeyId": key["AccessKeyId"],
                                              "SecretAccessKey": key["SecretAccessKey"]}).get_session_token()
    temp = session["Credentials"]
    temp_creds = Credentials(temp["AccessKeyId"], temp["SecretAccessKey"], temp["SessionToken"])
    signed = sign("POST", "https://sts.amazonaws.com/", b"Action=GetCallerIdentity&Version=2011-06-15",
                  temp_creds, service="sts")
    assert any(k.lower() == "x-amz-security-token" for k, _ in signed["Headers"])
    who = keep.client("sts", signed_request=signed).get_caller_identity()
    assert who["Arn"] == f"arn:aws:iam::{account}:user/ci"
    # Without MFA, such credentials may not call IAM.
    signed = sign("POST", "https://iam.amazonaws.com/", body, temp_creds)
    with pytest.raises(codekeep.ClientError) as no_mfa:
        keep.client("iam", signed_request=signed).get_user()
    assert no_mfa.value.response["Error"]["Code"] == "AccessDeniedException"


def test_git_credentials_and_ssh_keys(keep):
    account = keep.create_account("py")["Id"]
    iam = keep.client("iam", account=account)
    iam.create_user(UserName="dev")
    cred = iam.create_service_specific_credential(UserName="dev", ServiceName="codecommit.amazonaws.com")
    cred = cred["ServiceSpecificCredential"]
    assert cred["ServiceUserName"] == f"dev-at-{account}" and len(cred["ServicePassword"]) >= 20
    listed = iam.list_service_specific_credentials(UserName="dev")["ServiceSpecificCredentials"]
    assert "ServicePassword" not in listed[0]
    key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev@box")
    uploaded = iam.upload_ssh_public_key(UserName="dev", SSHPublicKeyBody=key)["SSHPublicKey"]
    assert uploaded["SSHPublicKeyId"].startswith("APKA")
    assert isinstance(uploaded["UploadDate"], __import__("datetime").datetime)
