#!/usr/bin/env python3
"""Validates csmil's FHIR bodies with the PyPI `fhir.resources` package (R4B models, pydantic), independent of
csmil: every resource (the body, each contained resource, each Bundle entry) is parsed by its model class, which
checks element names, types, cardinalities and required elements; then every reference must resolve inside the
body ('#id' to a contained resource, 'urn:uuid:…' to a Bundle entry's fullUrl), and every contained resource must
be referenced (dom-3). Prints one JSON line per file; exit status 1 if any file fails.
"""
import json
import sys

from fhir.resources.R4B import get_fhir_model_class


def references(value, found):
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "reference" and isinstance(inner, str):
                found.append(inner)
            else:
                references(inner, found)
    elif isinstance(value, list):
        for inner in value:
            references(inner, found)
    return found


def validate(resource, problems, where):
    kind = resource.get("resourceType")
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except Exception as error:
        problems.append("%s (%s): %s" % (where, kind, error))


def check(body):
    problems = []
    kinds = []
    validate(body, problems, "body")
    if body.get("resourceType") == "Bundle":
        if body.get("type") != "transaction":
            problems.append("Bundle.type is %r, not transaction" % body.get("type"))
        entries = body.get("entry", [])
        urls = {entry.get("fullUrl") for entry in entries}
        for index, entry in enumerate(entries):
            resource = entry.get("resource", {})
            kinds.append(resource.get("resourceType"))
            validate(resource, problems, "entry %d" % index)
            request = entry.get("request", {})
            if request.get("method") != "POST" or request.get("url") != resource.get("resourceType"):
                problems.append("entry %d: request %r" % (index, request))
            for reference in references(resource, []):
                if reference.startswith("urn:uuid:") and reference not in urls:
                    problems.append("entry %d: reference %s resolves to no entry" % (index, reference))
    else:
        kinds.append(body.get("resourceType"))
        contained = body.get("contained", [])
        ids = set()
        for index, resource in enumerate(contained):
            kinds.append(resource.get("resourceType"))
            validate(resource, problems, "contained %d" % index)
            ids.add("#" + resource.get("id", ""))
        used = set(reference for reference in references(body, []) if reference.startswith("#"))
        for reference in used - ids:
            problems.append("reference %s resolves to no contained resource" % reference)
        for unused in ids - used:
            problems.append("contained %s is not referenced (dom-3)" % unused)
    return problems, kinds


def main():
    failed = False
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as handle:
            body = json.load(handle)
        problems, kinds = check(body)
        failed = failed or bool(problems)
        print(json.dumps({"file": path, "ok": not problems, "resources": kinds, "problems": problems}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
