"""A stand-in for the `az` CLI that deploy.sh and destroy.sh call: Azure and a Databricks workspace, kept in a JSON file.

tests/infra/test_deploy_offline.py puts it first on PATH as `az` and runs the scripts against it. It answers only
the commands the scripts use, in the shapes the documentation gives (the Databricks REST API's, as `az rest` sees
them), and fails loudly on anything else. It prints as az does: `--query` is JMESPath (the jmespath package az
uses), `-o tsv` follows knack's rules (a list prints one item a line, a None inside a row prints "None", a None
result prints nothing). Every call is appended to $FAKE_AZ_LOG; the state is $FAKE_AZ_STATE.

It runs with a Python that has jmespath (the checkov venv, .venv/checkov, which pins it).
"""

import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jmespath

STATE = Path(os.environ["FAKE_AZ_STATE"])
DATABRICKS_APP_ID = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
VALUED = {  # options that take one value (the rest are flags, or take several: --tags, -p)
    "-n", "--name", "-g", "--resource-group", "-l", "--location", "--query", "-o", "--output", "--id", "--ids",
    "--display-name", "--vault-name", "--file", "--encoding", "--expires", "--namespace-name", "--eventhub-name",
    "--years", "-r", "--registry", "-t", "--image", "-f", "--template-file", "--resource", "--method", "-m",
    "--url", "--uri", "--headers", "--body", "--url-parameters", "--uri-parameters", "--revision",
}
MULTI = {"--tags", "-p", "--parameters"}


class AzError(Exception):
    pass


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse(argv: list[str]) -> tuple[list[str], dict, list[str]]:
    words, options, positional = [], {}, []
    i = 0
    while i < len(argv) and not argv[i].startswith("-"):
        words.append(argv[i])
        i += 1
    while i < len(argv):
        arg = argv[i]
        if arg in MULTI:
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
            options.setdefault(arg, []).extend(values)
            continue
        if arg in VALUED:
            options[arg] = argv[i + 1]
            i += 2
            continue
        if arg.startswith("-"):
            options[arg] = True
        else:
            positional.append(arg)
        i += 1
    return words, options, positional


def expand(value):
    """az's @file: an argument value that names a file is the file's content."""
    if isinstance(value, str) and value.startswith("@") and Path(value[1:]).is_file():
        return Path(value[1:]).read_text()
    return value


def tsv(result) -> str:
    rows = result if isinstance(result, list) else [result]
    lines = []
    for row in rows:
        if isinstance(row, dict):
            cells = [row[k] for k in sorted(row)]
        elif isinstance(row, list):
            cells = row
        else:
            cells = [row]
        out = []
        for cell in cells:
            if isinstance(cell, list):
                out.append(str(len(cell)))
            elif isinstance(cell, dict):
                out.append("")
            elif isinstance(cell, bool):
                out.append(str(cell).lower())
            else:
                out.append(cell if isinstance(cell, str) else str(cell))
        lines.append("\t".join(out))
    return "".join(line + "\n" for line in lines)


def emit(result, options) -> None:
    if options.get("--query"):
        result = jmespath.search(options["--query"], result)
    fmt = options.get("-o", options.get("--output", "json"))
    if result is None or fmt == "none":
        return
    sys.stdout.write(tsv(result) if fmt == "tsv" else json.dumps(result, indent=2) + "\n")


def tags_of(values: list[str]) -> dict:
    return dict(v.split("=", 1) if "=" in v else (v, "") for v in values)


# --- Azure

def azure(words, o, s):
    cmd = " ".join(words)
    groups, kv = s["groups"], s["vaults"]
    if cmd == "group show":
        group = groups.get(o["-n"])
        if group is None:
            raise AzError(f"ResourceGroupNotFound: {o['-n']}")
        return group
    if cmd == "group create":
        groups[o["-n"]] = {"name": o["-n"], "location": o["-l"], "tags": tags_of(o.get("--tags", []))}
        return groups[o["-n"]]
    if cmd == "group update":
        groups[o["-n"]]["tags"] = tags_of(o["--tags"])
        return groups[o["-n"]]
    if cmd == "group delete":
        del groups[o["-n"]]
        for vault in [v for v in kv.values() if v["group"] == o["-n"]]:
            vault["deleted"] = True
        s["workspace"]["exists"] = False
        return None
    if cmd == "resource show":
        if o["--ids"] == s["workspace"]["id"] and s["workspace"]["exists"]:
            return {"id": o["--ids"]}
        raise AzError("ResourceNotFound")
    if cmd == "account show":
        return {"user": {"type": "user", "name": "dev@example.com"}, "tenantId": "tenant-1"}
    if cmd == "ad signed-in-user show":
        return {"id": "deployer-object-id"}
    if cmd == "ad app show":
        if o["--id"] in s["apps"]:
            return s["apps"][o["--id"]]
        raise AzError("app not found")
    if cmd == "ad app create":
        app = {"appId": str(uuid.uuid4()), "displayName": o["--display-name"], "passwords": 0}
        s["apps"][app["appId"]] = app
        return app
    if cmd == "ad app delete":
        del s["apps"][o["--id"]]
        return None
    if cmd == "ad app credential reset":
        s["apps"][o["--id"]]["passwords"] += 1
        return {"password": "lake-secret-" + uuid.uuid4().hex}
    if cmd == "ad sp show":
        if o["--id"] == DATABRICKS_APP_ID or o["--id"] in s["sps"]:
            return {"id": "sp-object-" + o["--id"]}
        raise AzError("sp not found")
    if cmd == "ad sp create":
        s["sps"].append(o["--id"])
        return {"id": "sp-object-" + o["--id"]}
    if cmd == "deployment group create":
        return deploy(o, s)
    if cmd == "deployment group show":
        deployment = s["deployments"].get(o["-n"])
        if deployment is None:
            raise AzError(f"DeploymentNotFound: {o['-n']}")
        return deployment
    if cmd == "keyvault secret show":
        secret = kv.get(o["--vault-name"], {}).get("secrets", {}).get(o["--name"])
        if secret is None:
            raise AzError(f"SecretNotFound: {o['--name']}")
        return secret
    if cmd == "keyvault secret set":
        attributes = {"enabled": True, "expires": None}
        if "--expires" in o:  # az's own format check (azure/cli/command_modules/keyvault/_validators.py)
            moment = datetime.strptime(o["--expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            attributes["expires"] = moment.isoformat()
        tags = {"file-encoding": o.get("--encoding", "utf-8"), **tags_of(o.get("--tags", []))}
        value = Path(o["--file"]).read_text()
        kv[o["--vault-name"]]["secrets"][o["--name"]] = {"value": value, "attributes": attributes, "tags": tags}
        return None
    if cmd == "keyvault show-deleted":
        if kv.get(o["--name"], {}).get("deleted"):
            return {"name": o["--name"]}
        raise AzError("not deleted")
    if cmd == "keyvault purge":
        del kv[o["--name"]]
        return None
    if cmd == "eventhubs eventhub authorization-rule keys list":
        return {"primaryConnectionString": "Endpoint=sb://fake/;SharedAccessKeyName=ingest-listen;SharedAccessKey=k"}
    if cmd == "acr repository show":
        if o["--image"] in s["images"]:
            return {}
        raise AzError("image not found")
    if cmd == "acr build":
        return s["images"].append(o["-t"])
    if cmd == "containerapp show":
        return {"properties": {"latestRevisionName": o["-n"] + "--rev1"}}
    if cmd == "containerapp revision restart":
        s["restarts"].append(o["-n"])
        return None
    raise AzError(f"the fake az does not know `az {cmd}`")


def deploy(o, s):
    parameters = {}
    for source in o["-p"]:
        document = json.loads(expand(source))  # a parameters file, or its "parameters" object alone (az takes both)
        parameters.update({k: v["value"] for k, v in document.get("parameters", document).items()})
    spec = s["template"]
    values = {**spec["defaults"], **parameters}
    missing = set(spec["required"]) - set(values)
    if missing:
        raise AzError(f"missing parameters {sorted(missing)}")
    unknown = set(parameters) - set(spec["parameters"])
    if unknown:
        raise AzError(f"parameters main.bicep does not declare: {sorted(unknown)}")
    group = o["-g"]
    vault = spec["canned"]["keyVaultName"]
    s["vaults"].setdefault(vault, {"group": group, "secrets": {}, "deleted": False})
    s["workspace"]["exists"] = True
    outputs = {}
    for name, source in spec["outputs"].items():
        if "param" in source:
            value = values[source["param"]]
            value = str(value) if not isinstance(value, str) else value
        elif name in spec["canned"]:
            value = spec["canned"][name]
        elif name == "containerAppNames":
            value = ["ca-movierec-code", "ca-movierec-daemon", "ca-movierec-webserver"] if values["deployApps"] else []
        elif name == "generatorName":
            value = "ci-movierec-generator" if values["deployApps"] else ""
        else:
            value = source.get("literal", "")
        outputs[name] = {"type": "Array" if isinstance(value, list) else "String", "value": value}
    s["deployments"][o["-n"]] = {"name": o["-n"], "properties": {"outputs": outputs, "parameters": parameters}}
    return None


# --- the Databricks workspace, behind `az rest`

def not_found(what):
    raise AzError(f"Not Found({json.dumps({'error_code': 'RESOURCE_DOES_NOT_EXIST', 'message': what})})")


def rest(o, s):
    method = o["--method"].upper()
    url = urlsplit(o["--url"])
    w = s["workspace"]
    if not w["exists"] or f"{url.scheme}://{url.netloc}" != w["host"]:
        raise AzError(f"no workspace at {url.netloc}")
    if o.get("--resource") != DATABRICKS_APP_ID:
        raise AzError("the workspace takes Entra tokens for the AzureDatabricks application only")
    headers = json.loads(expand(o["--headers"]))
    if headers.get("X-Databricks-Azure-Workspace-Resource-Id") != w["id"]:
        raise AzError("no X-Databricks-Azure-Workspace-Resource-Id header")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    if o.get("--url-parameters"):
        key, value = o["--url-parameters"].split("=", 1)
        query[key] = value
    body = json.loads(expand(o["--body"])) if o.get("--body") else {}
    path = url.path.removeprefix("/api/")
    s["calls"].append({"method": method, "path": path, "query": query, "body": body})
    return api(method, path, query, body, w)


def api(method, path, query, body, w):
    route = (method, path)
    if route == ("GET", "2.0/secrets/scopes/list"):
        return {"scopes": [{"name": n, "backend_type": "AZURE_KEYVAULT"} for n in w["scopes"]]} if w["scopes"] else {}
    if route == ("POST", "2.0/secrets/scopes/create"):
        assert body["scope_backend_type"] == "AZURE_KEYVAULT" and body["backend_azure_keyvault"]["dns_name"]
        w["scopes"][body["scope"]] = {"acls": {}}
        return {}
    if route == ("GET", "2.0/secrets/acls/list"):
        acls = w["scopes"][query["scope"]]["acls"]
        return {} if not acls else {"acls": [{"principal": p, "permission": v} for p, v in acls.items()]}
    if route == ("POST", "2.0/secrets/acls/put"):
        acls = w["scopes"][body["scope"]]["acls"]
        if body["principal"] in acls:
            raise AzError("RESOURCE_ALREADY_EXISTS")
        assert body["principal"] in {sp["applicationId"] for sp in w["sps"].values()}, "secret ACLs name an application id"
        acls[body["principal"]] = body["permission"]
        return {}
    scim = "2.0/preview/scim/v2/ServicePrincipals"
    if route == ("GET", scim):
        name = re.fullmatch(r'displayName eq "(.*)"', query["filter"]).group(1)
        found = [sp for sp in w["sps"].values() if sp["displayName"] == name]
        return {"totalResults": len(found), "Resources": found} if found else {"totalResults": 0}
    if route == ("POST", scim):
        assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"]
        sp = {"id": str(7000 + len(w["sps"]) + len(w["deleted_sps"])), "applicationId": str(uuid.uuid4()),
              "displayName": body["displayName"], "active": True, "entitlements": body.get("entitlements", [])}
        w["sps"][sp["id"]] = sp
        return sp
    if path.startswith(scim + "/"):
        sp_id = path.rsplit("/", 1)[1]
        sp = w["sps"].get(sp_id) or not_found(sp_id)
        if method == "GET":
            return sp
        if method == "PATCH":
            assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
            for op in body["Operations"]:
                assert op["op"] == "add" and op["path"] == "entitlements"
                sp["entitlements"] += [e for e in op["value"] if e not in sp["entitlements"]]
            return {}
        if method == "DELETE":
            w["deleted_sps"].append(w["sps"].pop(sp_id))
            return None
    match = re.fullmatch(r"2\.0/accounts/servicePrincipals/(\w+)/credentials/secrets(?:/(\w+))?", path)
    if match:
        secrets = w["oauth_secrets"].setdefault(match[1], [])
        if match[1] not in w["sps"]:
            not_found(match[1])
        if method == "GET":
            return {"secrets": [{k: v for k, v in x.items() if k != "secret"} for x in secrets]} if secrets else {}
        if method == "POST":
            seconds = int(body["lifetime"].removesuffix("s"))
            assert 0 < seconds <= 730 * 86400, "Databricks allows 730 days at most"
            if len(secrets) >= 5:
                raise AzError("a service principal has five OAuth secrets at most")
            secret = {"id": uuid.uuid4().hex, "secret": "dose" + uuid.uuid4().hex, "status": "ACTIVE",
                      "create_time": iso_ms(now()), "expire_time": iso_ms(now() + timedelta(seconds=seconds))}
            secrets.append(secret)
            return secret
        if method == "DELETE":
            secrets[:] = [x for x in secrets if x["id"] != match[2]]
            return None
    if route == ("GET", "2.0/settings/types/default_namespace_ws/names/default"):
        if w.get("default_namespace") is None:
            not_found("setting")
        return {"setting_name": "default", "etag": "1", "namespace": {"value": w["default_namespace"]}}
    if route == ("GET", "2.1/unity-catalog/current-metastore-assignment"):
        return {"workspace_id": 1, "metastore_id": "m-1", "default_catalog_name": w["metastore_default"]}
    uc = w["uc"]
    if route == ("POST", "2.1/unity-catalog/schemas"):
        full = f"{body['catalog_name']}.{body['name']}"
        assert full not in uc, f"schema {full} exists"
        uc[full] = {"kind": "schema", "full_name": full, "comment": body.get("comment"), "grants": {}}
        return uc[full]
    if route == ("POST", "2.1/unity-catalog/volumes"):
        full = f"{body['catalog_name']}.{body['schema_name']}.{body['name']}"
        assert body["volume_type"] == "MANAGED" and full not in uc
        assert f"{body['catalog_name']}.{body['schema_name']}" in uc, "the schema comes first"
        uc[full] = {"kind": "volume", "full_name": full, "comment": body.get("comment"), "grants": {}}
        return uc[full]
    match = re.fullmatch(r"2\.1/unity-catalog/(schemas|volumes)/(.+)", path)
    if match:
        obj = uc.get(match[2])
        if obj is None or obj["kind"] != match[1][:-1]:
            not_found(match[2])
        if method == "GET":
            return obj
        if method == "DELETE":
            if match[1] == "schemas" and any(k.startswith(match[2] + ".") for k in uc):
                raise AzError("SCHEMA_NOT_EMPTY")
            del uc[match[2]]
            return None
    match = re.fullmatch(r"2\.1/unity-catalog/permissions/(catalog|schema|volume)/(.+)", path)
    if match:
        grants = (w["catalogs"] if match[1] == "catalog" else uc)[match[2]]["grants"]
        if method == "GET":
            held = grants.get(query.get("principal"), [])
            return {"privilege_assignments": [{"principal": query["principal"], "privileges": held}]} if held else {}
        if method == "PATCH":
            for change in body["changes"]:
                held = grants.setdefault(change["principal"], [])
                held += [p for p in change.get("add", []) if p not in held]
            return {"privilege_assignments": [{"principal": p, "privileges": v} for p, v in grants.items()]}
    pools = w["pools"]
    if route == ("GET", "2.0/instance-pools/list"):
        return {"instance_pools": list(pools.values())} if pools else {}
    if route == ("POST", "2.0/instance-pools/create"):
        assert body["min_idle_instances"] == 0
        pool = {**body, "instance_pool_id": f"pool-{len(pools) + 1}", "acl": {}}
        pools[pool["instance_pool_id"]] = pool
        return {"instance_pool_id": pool["instance_pool_id"]}
    if route == ("GET", "2.0/instance-pools/get"):
        return pools.get(query["instance_pool_id"]) or not_found("pool")
    if route == ("POST", "2.0/instance-pools/edit"):
        pools[body["instance_pool_id"]].update(body)
        return {}
    match = re.fullmatch(r"2\.0/permissions/instance-pools/([\w-]+)", path)
    if match:
        pool = pools[match[1]]
        if method == "GET":
            return {"object_id": f"/instance-pools/{match[1]}", "access_control_list": [
                {"service_principal_name": p, "all_permissions": [{"permission_level": v, "inherited": False}]}
                for p, v in pool["acl"].items()]}
        if method == "PATCH":
            for entry in body["access_control_list"]:
                pool["acl"][entry["service_principal_name"]] = entry["permission_level"]
            return {}
    raise AzError(f"the fake workspace does not know {method} /api/{path}")


def main(argv: list[str]) -> int:
    words, options, _ = parse(argv)
    with open(os.environ["FAKE_AZ_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    state = json.loads(STATE.read_text())
    try:
        result = rest(options, state) if words == ["rest"] else azure(words, options, state)
    except AzError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    finally:
        STATE.write_text(json.dumps(state, indent=1))
    emit(result, options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
