"""Digital rule sets: the minimal, sourced subset the sandbox evaluates (BEHAVIOUR.md row 24).

Contract
--------
* Shapes are the SDK's ``DigitalRuleSet`` / ``DigitalRule`` / ``DigitalCondition`` /
  ``DigitalAction``.  Modelled: rules of category ``PostContact`` whose conditions are
  ``lastResultOverallConditionSettings`` or ``lastResultByColumnConditionSettings`` (with
  ``smsWrapupCodes`` / ``emailWrapupCodes``; ``inverted`` honoured) and whose actions are
  ``markContactUncontactableActionSettings`` (``mediaTypes`` of Voice, SMS, Email, WhatsApp).
  Anything else is refused at create/update with 400 ``not.modelled`` so no test silently
  relies on a rule the sandbox would ignore.
* After every attempt the runner evaluates the post-contact rules of the campaign's rule sets
  in ``order``: a rule fires when all its conditions hold for the attempt's wrap-up code (and
  column); "mark contact uncontactable" sets ``contactableStatus[media].contactable=false``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from genesys_sandbox.errors import ApiError, bad_request, invalid_value
from genesys_sandbox.store import Contact, DigitalRuleSet

__all__ = ["MEDIA_TYPES", "apply_post_contact_rules", "parse_rules"]

MEDIA_TYPES = ("Voice", "SMS", "Email", "WhatsApp")
CONDITIONS = ("lastResultOverallConditionSettings", "lastResultByColumnConditionSettings")
CODE_KEYS = ("smsWrapupCodes", "emailWrapupCodes")


def _not_modelled(what: str, field: str) -> ApiError:
    return ApiError(
        400,
        "not.modelled",
        f"{what} is not modelled by the sandbox (only PostContact rules with last-result "
        "conditions and the mark-contact-uncontactable action are).",
        field=field,
    )


def _codes(settings: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key in CODE_KEYS:
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise invalid_value(f"{where}.{key} must be a list of strings.", where)
            out[key] = list(value)
        elif key in ("smsColumnName", "emailColumnName"):
            if not isinstance(value, str):
                raise invalid_value(f"{where}.{key} must be a string.", where)
            out[key] = value
        elif value not in (None, []):
            raise _not_modelled(f"'{where}.{key}'", where)
    if not any(out.get(k) for k in CODE_KEYS):
        raise bad_request(f"{where} needs smsWrapupCodes or emailWrapupCodes.", where)
    return out


def _condition(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object.", where)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if key == "inverted":
            if not isinstance(value, bool):
                raise invalid_value(f"{where}.inverted must be a boolean.", where)
            out[key] = value
        elif key in CONDITIONS:
            if not isinstance(value, dict):
                raise bad_request(f"{where}.{key} must be an object.", where)
            out[key] = _codes(value, f"{where}.{key}")
        else:
            raise _not_modelled(f"Condition '{key}'", where)
    if sum(k in out for k in CONDITIONS) != 1:
        raise bad_request(f"{where} needs exactly one condition settings object.", where)
    return out


def _action(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be an object.", where)
    given = {k: v for k, v in raw.items() if v is not None}
    unknown = sorted(set(given) - {"markContactUncontactableActionSettings"})
    if unknown:
        raise _not_modelled(f"Action '{unknown[0]}'", where)
    settings = given.get("markContactUncontactableActionSettings")
    if not isinstance(settings, dict):
        raise bad_request(f"{where} needs markContactUncontactableActionSettings.", where)
    media = settings.get("mediaTypes")
    if not isinstance(media, list) or not media or not all(m in MEDIA_TYPES for m in media):
        raise invalid_value(
            f"{where}.markContactUncontactableActionSettings.mediaTypes must list "
            f"{', '.join(MEDIA_TYPES)}.",
            where,
        )
    return {"markContactUncontactableActionSettings": {"mediaTypes": list(media)}}


def parse_rules(raw: Any) -> list[dict[str, Any]]:
    """Validate ``DigitalRuleSet.rules``; the answer is what the views echo."""
    if not isinstance(raw, list) or not raw:
        raise bad_request("The field 'rules' is required.", "rules")
    rules = []
    for i, item in enumerate(raw):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object.", where)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request(f"{where}.name is required.", where)
        category = item.get("category")
        if category not in ("PreContact", "PostContact"):
            raise invalid_value(f"{where}.category must be PreContact or PostContact.", where)
        if category != "PostContact":
            raise _not_modelled(f"Category '{category}'", where)
        order = item.get("order", i)
        if isinstance(order, bool) or not isinstance(order, int):
            raise invalid_value(f"{where}.order must be an integer.", where)
        conditions = item.get("conditions")
        actions = item.get("actions")
        if not isinstance(conditions, list) or not conditions:
            raise bad_request(f"{where}.conditions is required.", where)
        if not isinstance(actions, list) or not actions:
            raise bad_request(f"{where}.actions is required.", where)
        rule: dict[str, Any] = {}
        if isinstance(item.get("id"), str):
            rule["id"] = item["id"]
        rule |= {
            "name": name,
            "order": order,
            "category": category,
            "conditions": [
                _condition(c, f"{where}.conditions[{j}]") for j, c in enumerate(conditions)
            ],
            "actions": [_action(a, f"{where}.actions[{j}]") for j, a in enumerate(actions)],
        }
        rules.append(rule)
    return rules


def _holds(condition: dict[str, Any], channel: str, column: str | None, code: str) -> bool:
    codes_key = "smsWrapupCodes" if channel == "sms" else "emailWrapupCodes"
    column_key = "smsColumnName" if channel == "sms" else "emailColumnName"
    if "lastResultOverallConditionSettings" in condition:
        settings = condition["lastResultOverallConditionSettings"]
        holds = code in (settings.get(codes_key) or [])
    else:
        settings = condition["lastResultByColumnConditionSettings"]
        holds = settings.get(column_key) == column and code in (settings.get(codes_key) or [])
    return not holds if condition.get("inverted") else holds


def apply_post_contact_rules(
    rule_sets: Iterable[DigitalRuleSet],
    contact: Contact,
    channel: str,
    column: str | None,
    code: str,
) -> None:
    for rule_set in rule_sets:
        for rule in sorted(rule_set.rules, key=lambda r: r["order"]):
            if rule["category"] != "PostContact":
                continue
            if not all(_holds(c, channel, column, code) for c in rule["conditions"]):
                continue
            for action in rule["actions"]:
                settings = action["markContactUncontactableActionSettings"]
                for media in settings["mediaTypes"]:
                    status = contact.contactable_status.setdefault(media, {})
                    status["contactable"] = False
