"""A small stand-in for 3CX's server-side CRM engine, to run the product's template as 3CX would.

Implements what the template uses (3CX's "CRM template XML description"):
`[Name]` substitution from parameters, predefined call variables and the
scenario's own variables; `<Number Prefix>`; Basic authentication from
`<Authentication><Value>user:password</Value>`; a REST `<Request>` (Get with the
URL as given, Post with `<PostValues>` as JSON); `<Rules Type="Any">` (the path
must be present); `<Variable Path>` over the JSON answer (a dotted path, an
array's first element); `<Output Value>`; `SkipIf` of the form `A!=B`.
Values are substituted into the URL as they are, without URL-encoding.
"""
from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import requests

VAR = re.compile(r"\[([A-Za-z][A-Za-z0-9]*)\]")


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace every `[Name]` with its value (an unknown name: KeyError, 3CX would leave it unresolved)."""
    return VAR.sub(lambda m: values[m.group(1)], text or "")


def format_number(number: str, prefix: str) -> str:
    """`<Number Prefix>`: AsIs, Off (no + / 00), Plus (+), Zeros (00)."""
    digits = number[1:] if number.startswith("+") else number[2:] if number.startswith("00") else None
    if digits is None or prefix == "AsIs":
        return number
    return {"Off": digits, "Plus": "+" + digits, "Zeros": "00" + digits}[prefix]


def resolve(document, path: str):
    """A dotted path over the JSON answer; arrays are entered at their first element."""
    value = document
    for part in path.split("."):
        while isinstance(value, list):
            if not value:
                return None
            value = value[0]
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    while isinstance(value, list):
        value = value[0] if value else None
    return value


def skipped(expression: str, values: dict[str, str]) -> bool:
    if not expression:
        return False
    left, sep, right = substitute(expression, values).partition("!=")
    assert sep, f"SkipIf form not supported here: {expression}"
    return left.strip() != right.strip()


class Template:
    def __init__(self, path):
        self.tree = ET.parse(path)  # raises on a template that is not well-formed
        self.root = self.tree.getroot()

    def parameters(self) -> dict[str, dict]:
        return {p.get("Name"): dict(p.attrib) for p in self.root.find("Parameters")}

    def scenario(self, scenario_id: str) -> ET.Element:
        return next(s for s in self.root.find("Scenarios") if s.get("Id") == scenario_id)

    def auth(self, values: dict[str, str]) -> dict:
        auth = self.root.find("Authentication")
        if auth.get("Type") != "Basic":
            return {}
        credentials = substitute(auth.find("Value").text, values)
        return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}

    def run(self, scenario_id: str, values: dict[str, str]) -> dict:
        """Run one scenario as 3CX would; returns {"status", "answer", "variables", "outputs", "skipped"}."""
        scenario = self.scenario(scenario_id)
        request = scenario.find("Request")
        if skipped(request.get("SkipIf", ""), values):
            return {"skipped": True}
        url = substitute(request.get("Url"), values)
        headers = self.auth(values)
        if request.get("RequestType") == "Get":
            response = requests.get(url, headers=headers, timeout=5)
        else:
            body = {v.get("Key"): substitute(v.text, values) for v in request.find("PostValues")}
            response = requests.post(url, json=body, headers=headers, timeout=5)
        answer = response.json()
        rules = scenario.find("Rules")
        matched = all(resolve(answer, r.text) not in (None, "") for r in rules) if rules is not None else True
        variables = {}
        for variable in scenario.find("Variables") or []:
            value = resolve(answer, variable.get("Path"))
            variables[variable.get("Name")] = "" if value is None else str(value)
        outputs = {}
        if matched:
            for output in scenario.find("Outputs") or []:
                outputs[output.get("Type")] = substitute(output.get("Value"), {**values, **variables})
        return {"skipped": False, "status": response.status_code, "answer": answer, "matched": matched,
                "variables": variables, "outputs": outputs}
