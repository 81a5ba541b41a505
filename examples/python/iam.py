"""IAM in Python: a user in a group with a policy, git credentials and an access key, an allowed
and a denied call with the explanation, and a role assumed across accounts with MFA (codes from
pyotp, standing in for the user's authenticator app). Run by `make test` and directly."""

import base64
import json
import time

import pyotp

import codekeep


def policy(*actions: str, resource: str = "*") -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]})


def tour() -> None:
    with codekeep.Keep.memory() as keep:
        dev_account = keep.create_account("development")["Id"]
        prod_account = keep.create_account("production")["Id"]
        iam = keep.client("iam", account=dev_account)

        # A user in a group whose policy lets its members read IAM and use KMS keys.
        iam.create_group(GroupName="developers")
        iam.put_group_policy(GroupName="developers", PolicyName="work",
                             PolicyDocument=policy("iam:Get*", "iam:List*", "kms:*"))
        iam.create_user(UserName="alice")
        iam.add_user_to_group(GroupName="developers", UserName="alice")
        print("created alice in group developers")

        # Git HTTPS credentials and an access key: secrets shown once.
        git = iam.create_service_specific_credential(
            UserName="alice", ServiceName="codecommit.amazonaws.com")["ServiceSpecificCredential"]
        print(f"git credentials: user {git['ServiceUserName']}, password shown once")
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        print(f"access key {key['AccessKeyId']}")

        # Calls made with the access key are decided by alice's policies.
        alice = keep.client("iam", credentials=key)
        print("allowed:", [u["UserName"] for u in alice.list_users()["Users"]])
        try:
            alice.create_user(UserName="mallory")
            raise SystemExit("alice must not create users")
        except alice.exceptions.AccessDeniedException as denied:
            print("denied:", denied.response["Error"]["Message"])
        why = keep.authorize("iam:CreateUser", f"arn:aws:iam::{dev_account}:user/mallory",
                             credentials=key)
        print("explained:", why["EvalDecision"], "-", why["DecidedBy"])
        assert why["EvalDecision"] == "implicitDeny"

        # Production trusts the development account, with MFA, for a deploy role.
        prod_iam = keep.client("iam", account=prod_account)
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev_account}:root"},
            "Action": "sts:AssumeRole", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]})
        role = prod_iam.create_role(RoleName="deploy", AssumeRolePolicyDocument=trust)["Role"]
        prod_iam.put_role_policy(RoleName="deploy", PolicyName="kms", PolicyDocument=policy("kms:*"))
        iam.put_user_policy(UserName="alice", PolicyName="assume-deploy",
                            PolicyDocument=policy("sts:AssumeRole", resource=role["Arn"]))

        # alice's virtual MFA device, enabled with two consecutive codes from her app.
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-phone")["VirtualMFADevice"]
        app = pyotp.TOTP(base64.b64decode(device["Base32StringSeed"]).decode())
        now = time.time()
        iam.enable_mfa_device(UserName="alice", SerialNumber=device["SerialNumber"],
                              AuthenticationCode1=app.at(now - 30), AuthenticationCode2=app.at(now))

        sts = keep.client("sts", credentials=key)
        session = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="release-42",
                                  SerialNumber=device["SerialNumber"], TokenCode=app.at(now + 30))
        print("assumed", session["AssumedRoleUser"]["Arn"])
        prod_kms = keep.client("kms", credentials=session["Credentials"])
        key_id = prod_kms.create_key(Description="created by the deploy role")["KeyMetadata"]["KeyId"]
        print(f"created KMS key {key_id} in production as the role")


def test_iam_tour() -> None:
    tour()


if __name__ == "__main__":
    tour()
