#!/usr/bin/env python3
"""Third-party side of the storage tests: sets up buckets and containers with the vendors' own
SDKs (boto3, azure-storage-blob) and reads back what custos stored, downloading every object and
hashing it here, so nothing in the check is custos' code.

Every command prints one JSON value on stdout."""

import base64
import hashlib
import json
import sys


def s3(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="testtest",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def az(conn):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(conn)


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "s3-bucket":
        endpoint, name, flags = args[0], args[1], set(args[2:])
        c = s3(endpoint)
        c.create_bucket(Bucket=name, ObjectLockEnabledForBucket="--lock" in flags)
        if "--encryption" in flags:
            c.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
                },
            )
        return {"created": name}
    if cmd == "s3-objects":
        endpoint, bucket, prefix = args
        c = s3(endpoint)
        out = []
        for v in c.list_object_versions(Bucket=bucket, Prefix=prefix).get("Versions", []):
            ver = {} if v["VersionId"] == "null" else {"VersionId": v["VersionId"]}
            h = c.head_object(Bucket=bucket, Key=v["Key"], ChecksumMode="ENABLED", **ver)
            body = c.get_object(Bucket=bucket, Key=v["Key"], **ver)["Body"].read()
            out.append(
                {
                    "key": v["Key"],
                    "versionId": v["VersionId"],
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "checksumSha256": h.get("ChecksumSHA256"),
                    "lockMode": h.get("ObjectLockMode"),
                    "retainUntil": str(h.get("ObjectLockRetainUntilDate")),
                    "legalHold": h.get("ObjectLockLegalHoldStatus"),
                    "sse": h.get("ServerSideEncryption"),
                    "kmsKeyId": h.get("SSEKMSKeyId"),
                }
            )
        return out
    if cmd == "s3-delete":
        endpoint, bucket, key, version = args[:4]
        kw = {"BypassGovernanceRetention": True} if "--bypass" in args else {}
        try:
            s3(endpoint).delete_object(Bucket=bucket, Key=key, VersionId=version, **kw)
            return "deleted"
        except Exception as e:  # botocore ClientError: report the code
            return getattr(e, "response", {}).get("Error", {}).get("Code", str(e))
    if cmd == "s3-put":
        endpoint, bucket, key, text = args
        r = s3(endpoint).put_object(Bucket=bucket, Key=key, Body=text.encode())
        return {"versionId": r.get("VersionId")}
    if cmd == "s3-put-claiming":
        # Bytes with a checksum header that does not belong to them: a store that checks
        # refuses this; moto stores it and reports the claimed checksum as the object's.
        endpoint, bucket, key, path, sha_b64 = args
        with open(path, "rb") as f:
            body = f.read()
        r = s3(endpoint).put_object(
            Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256", ChecksumSHA256=sha_b64
        )
        return {"versionId": r.get("VersionId")}
    if cmd == "az-container":
        conn, name = args
        az(conn).create_container(name)
        return {"created": name}
    if cmd == "az-blobs":
        conn, container, prefix = args
        cc = az(conn).get_container_client(container)
        out = []
        for b in cc.list_blobs(name_starts_with=prefix, include=["metadata"]):
            data = cc.download_blob(b.name).readall()
            md5 = b.content_settings.content_md5
            out.append(
                {
                    "name": b.name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "md5": base64.b64encode(md5).decode() if md5 else None,
                    "md5OfBytes": base64.b64encode(hashlib.md5(data).digest()).decode(),
                    "metaSha256": (b.metadata or {}).get("sha256"),
                }
            )
        return out
    if cmd == "az-sas":
        import datetime
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        conn, container = args
        svc = az(conn)
        return generate_container_sas(
            svc.account_name,
            container,
            account_key=svc.credential.account_key,
            permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, list=True),
            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
        )
    if cmd == "az-put":
        conn, container, name, text = args
        az(conn).get_container_client(container).upload_blob(name, text.encode())
        return {"put": name}
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
