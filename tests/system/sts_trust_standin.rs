//! The STS trust-policy stand-in, checked with a client nobody here wrote: boto3 (from the
//! moto virtualenv) asks for AssumeRole as any AWS user would and gets what STS answers:
//! `AccessDenied` (HTTP 403) unless the caller presents an ExternalId the role's trust
//! policy requires, and everything else (S3 here) passes through to moto unchanged.

use std::process::Command;

use serde_json::Value;
use windlass_standins::moto::ACCOUNT_ID;

use crate::support::{AwsBed, repo_root};

const SCRIPT: &str = r#"
import json, sys, boto3, botocore
endpoint, role = sys.argv[1], sys.argv[2]
session = dict(endpoint_url=endpoint, region_name="us-east-1",
               aws_access_key_id="testing", aws_secret_access_key="testing")
sts = boto3.client("sts", **session)
out = {}
for label, extra in [("wrong", {"ExternalId": "windlass-someone-else"}), ("missing", {}),
                     ("right", {"ExternalId": "windlass-the-owner"})]:
    try:
        creds = sts.assume_role(RoleArn=role, RoleSessionName="probe", **extra)["Credentials"]
        who = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id=creds["AccessKeyId"],
                           aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"]).get_caller_identity()
        out[label] = {"ok": True, "account": who["Account"], "arn": who["Arn"]}
    except botocore.exceptions.ClientError as e:
        out[label] = {"ok": False, "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
                      "code": e.response["Error"]["Code"], "message": e.response["Error"]["Message"]}
try:
    sts.assume_role(RoleArn=role.replace("windlass-access", "nobody"), RoleSessionName="probe",
                    ExternalId="windlass-the-owner")
    out["absent"] = {"ok": True}
except botocore.exceptions.ClientError as e:
    out["absent"] = {"ok": False, "code": e.response["Error"]["Code"]}
s3 = boto3.client("s3", **session)
s3.create_bucket(Bucket="through-the-stand-in")
s3.put_object(Bucket="through-the-stand-in", Key="k", Body=b"payload")
out["s3"] = s3.get_object(Bucket="through-the-stand-in", Key="k")["Body"].read().decode()
out["s3_head_length"] = s3.head_object(Bucket="through-the-stand-in", Key="k")["ContentLength"]
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_is_refused_assume_role_unless_it_presents_the_trusted_external_id() {
    let aws = AwsBed::start().await;
    let role = aws
        .moto
        .create_role("windlass-access", "windlass-the-owner")
        .await
        .unwrap();
    let python = repo_root().join(".venv/bin/python");
    let output = tokio::task::spawn_blocking({
        let endpoint = aws.sts.endpoint();
        let role = role.clone();
        move || {
            Command::new(python)
                .args(["-c", SCRIPT, &endpoint, &role])
                .env("AWS_CONFIG_FILE", "/nonexistent/windlass-test/config")
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    "/nonexistent/windlass-test/credentials",
                )
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .expect("python from moto's virtualenv: run scripts/setup.sh")
        }
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    let denial = format!(
        "User: arn:aws:sts::{ACCOUNT_ID}:user/moto is not authorized to perform: \
         sts:AssumeRole on resource: {role}"
    );
    for refused in ["wrong", "missing"] {
        assert_eq!(out[refused]["ok"], false, "{out:#}");
        assert_eq!(out[refused]["status"], 403, "{out:#}");
        assert_eq!(out[refused]["code"], "AccessDenied", "{out:#}");
        assert_eq!(out[refused]["message"], denial.as_str(), "{out:#}");
    }
    assert_eq!(out["absent"]["code"], "AccessDenied", "{out:#}");
    assert_eq!(out["right"]["ok"], true, "{out:#}");
    assert_eq!(out["right"]["account"], ACCOUNT_ID);
    assert_eq!(
        out["right"]["arn"],
        format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/windlass-access/probe")
    );
    assert_eq!(out["s3"], "payload", "S3 passes through: {out:#}");
    assert_eq!(out["s3_head_length"], 7, "{out:#}");

    let attempts = aws.sts.attempts();
    let judged: Vec<(Option<&str>, bool)> = attempts
        .iter()
        .map(|a| (a.external_id.as_deref(), a.allowed))
        .collect();
    assert_eq!(
        judged,
        [
            (Some("windlass-someone-else"), false),
            (None, false),
            (Some("windlass-the-owner"), true),
            (Some("windlass-the-owner"), false),
        ]
    );
}
