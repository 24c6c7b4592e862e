#!/usr/bin/env python3
"""Semantic checks of k8s/ that schema validation cannot make.

- the StatefulSet's serviceName names a headless Service;
- every selector (StatefulSet, Services, PDB) matches the pod template's labels;
- every probe port is a declared container port;
- every volumeClaimTemplate is mounted;
- each PodDisruptionBudget sets exactly one of minAvailable and maxUnavailable.

`--self-test` breaks each rule in a copy of the manifests and checks it is caught.
"""
import copy
import glob
import sys

import yaml


def load(pattern="k8s/*.yaml"):
    docs = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check(docs):
    errors = []
    kinds = lambda k: [d for d in docs if d.get("kind") == k]
    services = {s["metadata"]["name"]: s for s in kinds("Service")}
    sets = kinds("StatefulSet")
    if not sets:
        errors.append("no StatefulSet")
    for ss in sets:
        name = ss["metadata"]["name"]
        spec = ss["spec"]
        tmpl = spec["template"]
        labels = tmpl["metadata"].get("labels", {})
        headless = services.get(spec.get("serviceName"))
        if headless is None:
            errors.append(f"{name}: serviceName {spec.get('serviceName')!r} names no Service")
        elif headless["spec"].get("clusterIP") != "None":
            errors.append(f"{name}: serviceName {spec['serviceName']!r} is not headless")
        if not matches(spec["selector"].get("matchLabels"), labels):
            errors.append(f"{name}: selector does not match the pod template's labels")
        for svc in services.values():
            if not matches(svc["spec"].get("selector"), labels):
                errors.append(f"Service {svc['metadata']['name']}: selector matches no dstash pod")
        for pdb in kinds("PodDisruptionBudget"):
            if not matches(pdb["spec"].get("selector", {}).get("matchLabels"), labels):
                errors.append(f"PDB {pdb['metadata']['name']}: selector does not match the pods")
        mounted = set()
        for c in tmpl["spec"]["containers"]:
            ports = {p["containerPort"] for p in c.get("ports", [])}
            names = {p.get("name") for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p:
                    continue
                handler = p.get("grpc") or p.get("httpGet") or p.get("tcpSocket") or {}
                port = handler.get("port")
                if port not in ports and port not in names:
                    errors.append(f"{name}/{c['name']}: {probe} port {port!r} is not a container port")
            mounted |= {m["name"] for m in c.get("volumeMounts", [])}
        for vct in spec.get("volumeClaimTemplates", []):
            if vct["metadata"]["name"] not in mounted:
                errors.append(f"{name}: volumeClaimTemplate {vct['metadata']['name']!r} is not mounted")
    for pdb in kinds("PodDisruptionBudget"):
        both = ("minAvailable" in pdb["spec"]) + ("maxUnavailable" in pdb["spec"])
        if both != 1:
            errors.append(f"PDB {pdb['metadata']['name']}: set exactly one of minAvailable and maxUnavailable")
    return errors


def self_test(docs):
    def first(kind, d):
        return next(x for x in d if x.get("kind") == kind)

    breakages = {
        "serviceName": lambda d: first("StatefulSet", d)["spec"].update(serviceName="nope"),
        "not headless": lambda d: [
            s["spec"].pop("clusterIP", None) for s in d if s.get("kind") == "Service"
        ],
        "selector": lambda d: first("StatefulSet", d)["spec"]["selector"].update(
            matchLabels={"app": "other"}
        ),
        "is not a container port": lambda d: first("StatefulSet", d)["spec"]["template"]["spec"]["containers"][0][
            "readinessProbe"
        ]["grpc"].update(port=5999),
        "not mounted": lambda d: first("StatefulSet", d)["spec"]["volumeClaimTemplates"][0][
            "metadata"
        ].update(name="other"),
        "exactly one": lambda d: first("PodDisruptionBudget", d)["spec"].update(minAvailable=1),
    }
    failed = False
    for what, breaking in breakages.items():
        broken = copy.deepcopy(docs)
        breaking(broken)
        errors = check(broken)
        if not any(what in e for e in errors):
            print(f"self-test: breaking {what!r} was not caught: {errors}")
            failed = True
    return not failed


def main():
    docs = load()
    errors = check(docs)
    for e in errors:
        print(f"k8s: {e}")
    if errors:
        sys.exit(1)
    if "--self-test" in sys.argv and not self_test(docs):
        sys.exit(1)
    print(f"k8s: {len(docs)} resources pass the semantic checks")


if __name__ == "__main__":
    main()
