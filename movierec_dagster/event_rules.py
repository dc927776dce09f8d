"""The rules a rating event must pass, and their messages, in plain Python: one set for the Spark ingest and the HTTP write path.

The Spark ingest (`stream.transforms.parse_events`) builds its column checks from the limits,
patterns and messages defined here; the HTTP write path calls `rating_event_failure` on each
decoded event, without Spark, and gets the reason the ingest would give it (or None). Both
must say the same thing about the same event: the ingest's rejected table and the API's 4xx
answer are read by the same producers. `tests/stream/test_event_rules.py` runs a list of events
through both and compares them.

Spark reads every field of an event as JSON text (`from_json` with a `string` schema), so
`rating_event_failure` first turns each decoded value back into the text Spark would have seen
(`_spark_text`), then applies the ingest's checks to that text: the same regular expressions,
and ports of the two Spark casts the ingest uses, string to double (Java's `Double.parseDouble`
plus Spark's special literals) and string to timestamp (Spark's `stringToTimestamp`, the cast
`try_to_timestamp` does without a format). Only the field, rating and time checks are here;
the checks of the line itself (UTF-8, length, JSON) belong to whoever reads the bytes.

Imports nothing from pyspark or dagster: the HTTP service starts without them.
"""

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from movierec_dagster.names import MAX_RATING, MIN_RATING, RATING_STEP

# An event's fields: the design's names, and the seed's name of each where it has one. A design
# field that is absent (or null) is read from the seed's; the seed's events carry no `event_id`.
FIELDS = ("event_id", "user_id", "movie_id", "rating", "timestamp")
SEED_FIELDS = {"user_id": "UserId", "movie_id": "MovieId", "rating": "Rating", "timestamp": "Timestamp"}

MAX_EVENT_ID_CHARS = 128
MAX_ID = 2_147_483_647  # ids are ints in every table
FUTURE_TOLERANCE_SECONDS = 300  # clock skew allowed between a producer and the ingest

# The texts the ingest reads as numbers (Java regular expressions, as Spark's `rlike` applies them).
INTEGER_TEXT = r"^-?[0-9]{1,18}$"  # 18 digits always fit a bigint
EPOCH_SECONDS_TEXT = r"^-?[0-9]{1,12}([.][0-9]+)?$"  # else the text is read as ISO-8601

EVENT_ID_TOO_LONG = f"event_id is longer than {MAX_EVENT_ID_CHARS} characters"
RATING_NOT_A_NUMBER = "rating is not a number"
RATING_OUT_OF_RANGE = f"rating is outside {MIN_RATING}-{MAX_RATING}"
RATING_OFF_STEP = f"rating is not a multiple of {RATING_STEP}"
TIMESTAMP_UNREADABLE = "timestamp is not epoch seconds or ISO-8601"
TIMESTAMP_BEFORE_1970 = "timestamp is before 1970"
TIMESTAMP_IN_FUTURE = "timestamp is in the future"


def missing(name: str) -> str:
    return f"{name} is missing"


def not_an_integer(name: str) -> str:
    return f"{name} is not an integer"


def not_a_positive_id(name: str) -> str:
    return f"{name} is not a positive 32-bit integer"


def rating_event_failure(event: Mapping[str, Any], now: datetime) -> str | None:
    """Why the ingest would reject this event (decoded by `json.loads`), or None when it would accept it.

    The checks run in the ingest's order and the first failing one is the reason. `now` is the
    ingest time, which bounds future timestamps (the ingest passes its own to `parse_events`).
    """
    text = {name: _field_text(event, name) for name in FIELDS}
    # An event in the seed's shape has its id derived from its content: never missing, 37 characters.
    if not (event.get("event_id") is None and event.get(SEED_FIELDS["user_id"]) is not None):
        if text["event_id"] is None:
            return missing("event_id")
        if len(text["event_id"]) > MAX_EVENT_ID_CHARS:
            return EVENT_ID_TOO_LONG
    for name in ("user_id", "movie_id"):
        if text[name] is None:
            return missing(name)
        value = _as_long(text[name])
        if value is None:
            return not_an_integer(name)
        if value <= 0 or value > MAX_ID:
            return not_a_positive_id(name)
    if text["rating"] is None:
        return missing("rating")
    if reason := rating_failure(_java_double(text["rating"])):
        return reason
    if text["timestamp"] is None:
        return missing("timestamp")
    seconds = _event_seconds(text["timestamp"], now)
    if seconds is None:
        return TIMESTAMP_UNREADABLE
    if seconds < 0:
        return TIMESTAMP_BEFORE_1970
    if seconds > now.timestamp() + FUTURE_TOLERANCE_SECONDS:
        return TIMESTAMP_IN_FUTURE
    return None


def event_seconds(timestamp: Any, now: datetime | None = None) -> float | None:
    """The epoch seconds the ingest reads from a decoded `timestamp` value (its `rated_at`), or None when it reads none.

    `now` (default: the clock) dates a time given without a date, as Spark does with today's date.
    """
    text = _value_text(timestamp)
    return None if text is None else _event_seconds(text, now or datetime.now(UTC))


def rating_value(rating: Any) -> float | None:
    """The number the ingest reads from a decoded `rating` value, or None when it reads none."""
    text = _value_text(rating)
    return None if text is None else _java_double(text)


def id_value(value: Any) -> int | None:
    """The integer the ingest reads from a decoded `user_id` or `movie_id` value, or None when it reads none."""
    text = _value_text(value)
    return None if text is None else _as_long(text)


def rating_failure(rating: float | None) -> str | None:
    """Why a rating (None when its text is not a number) is invalid, as `validation.rating_value_failure` says it; None if valid."""
    if rating is None or math.isnan(rating):
        return RATING_NOT_A_NUMBER
    if rating < MIN_RATING or rating > MAX_RATING:
        return RATING_OUT_OF_RANGE
    if rating / RATING_STEP != math.floor(rating / RATING_STEP):
        return RATING_OFF_STEP
    return None


# --- The text Spark reads ---------------------------------------------------------------------


def _field_text(event: Mapping[str, Any], name: str) -> str | None:
    """The field's text as the ingest's `_field` has it: the seed's field when absent, trimmed, blank as missing."""
    value = event.get(name)
    if value is None and name in SEED_FIELDS:
        value = event.get(SEED_FIELDS[name])
    return _value_text(value)


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    text = _spark_text(value).strip(" ")  # Spark's trim() removes spaces only
    return text or None


def _spark_text(value: Any) -> str:
    """What `from_json` gives for a value read into a string field: a string's own text, else the value as JSON.

    Spark (Jackson) writes that JSON compactly, and writes a non-integer number from its double:
    `4.00` is read as "4.0", `1.5e9` as "1.5E9", NaN and infinities as quoted strings.
    """
    return value if isinstance(value, str) else _jackson_json(value)


def _jackson_json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double_json(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_jackson_json(str(key))}:{_jackson_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_jackson_json(item) for item in value) + "]"
    raise TypeError(f"not a value json.loads returns: {type(value).__name__}")


def _java_double_json(number: float) -> str:
    """Java's `Double.toString` (as Jackson writes a double), digits as Python's shortest repr; NaN and infinities quoted."""
    if math.isnan(number):
        return '"NaN"'
    if math.isinf(number):
        return '"Infinity"' if number > 0 else '"-Infinity"'
    if number == 0 or 1e-3 <= abs(number) < 1e7:
        return repr(number)  # plain notation with at least one decimal, as Java's
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = int(exponent or 0) + len(whole) - 1 - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0") or "0"
    sign = "-" if number < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{point}"


# --- Spark's casts, ported ---------------------------------------------------------------------

# Java's `$` also matches before a line terminator that ends the input.
_JAVA_END = r"(?:\r\n|[\n\r\u0085\u2028\u2029])?\Z"
_INTEGER = re.compile(INTEGER_TEXT.removesuffix("$") + _JAVA_END)
_EPOCH_SECONDS = re.compile(EPOCH_SECONDS_TEXT.removesuffix("$") + _JAVA_END)

_JAVA_TRIM = "".join(map(chr, range(0x21)))  # String.trim(): every char up to the space
_SPARK_TRIM = _JAVA_TRIM + "\x7f"  # the datetime parser's trim: ASCII whitespace and control characters


def _as_long(text: str) -> int | None:
    """The ingest's `_as_long`: an integer of up to 18 digits, cast to bigint (which trims ASCII controls)."""
    if not _INTEGER.match(text):
        return None
    digits = text.rstrip(_SPARK_TRIM)
    return int(digits) if re.fullmatch(r"-?[0-9]+", digits) else None


_JAVA_DECIMAL = re.compile(r"[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
_JAVA_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+[.]?|[0-9a-fA-F]*[.][0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?")
_JAVA_SPECIAL = re.compile(r"[+-]?(?:NaN|Infinity)")
_SPARK_SPECIAL = {
    **dict.fromkeys(("inf", "+inf", "infinity", "+infinity"), math.inf),
    **dict.fromkeys(("-inf", "-infinity"), -math.inf),
    "nan": math.nan,
}


def _java_double(text: str) -> float | None:
    """Spark's cast of a string to double: `Double.parseDouble`, else Spark's own literals (inf, nan), else null.

    So "4.5d", " 4.5", "0x1.2p2" and "INF" are numbers; "4_5" and "NaN" in quotes are not.
    """
    trimmed = text.strip(_JAVA_TRIM)
    if _JAVA_SPECIAL.fullmatch(trimmed):
        return float(trimmed)
    unsuffixed = trimmed[:-1] if trimmed[-1:] in ("f", "F", "d", "D") else trimmed
    if _JAVA_DECIMAL.fullmatch(trimmed):
        return float(unsuffixed)
    if _JAVA_HEX.fullmatch(trimmed):
        return float.fromhex(unsuffixed)
    return _SPARK_SPECIAL.get(trimmed.lower())


def _event_seconds(text: str, now: datetime) -> float | None:
    """The ingest's `_event_seconds`: epoch seconds from a number, else from an ISO-8601 text, else None."""
    if _EPOCH_SECONDS.match(text) and (number := _java_double(text)) is not None:
        return number
    micros = _timestamp_micros(text, now)
    return None if micros is None else float(micros) / 1_000_000


# Spark's `parseTimestampString`: [+-]yyyy[yy][-[m]m[-[d]d[( |T)TIME]]], or a time alone (TIME after
# a leading T, or [h]h:[m]m...), where TIME is [h]h[:[m]m[:[s]s[.fraction][zone]]].
_TIME = r"(?P<hour>[0-9]{1,2})(?::(?P<minute>[0-9]{1,2})(?::(?P<second>[0-9]{1,2})(?:[.](?P<fraction>[0-9]*))?(?P<zone>[^0-9].*)?)?)?"
_DATE_TIME = re.compile(
    r"(?P<sign>[+-])?(?P<year>[0-9]{4,6})(?:-(?P<month>[0-9]{1,2})(?:-(?P<day>[0-9]{1,2})(?:[ T]" + _TIME + r")?)?)?",
    re.DOTALL,
)
_TIME_ALONE = re.compile(r"T" + _TIME, re.DOTALL)
_MIN_LONG, _MAX_LONG = -(2**63), 2**63 - 1


def _timestamp_micros(text: str, now: datetime) -> int | None:
    """Spark's cast of a string to timestamp (`try_to_timestamp` without a format), in microseconds, or None.

    Text without a zone is in the session time zone, UTC in this project. A time alone is on
    today's date in its zone (Spark's clock; `now`'s date here).
    """
    trimmed = text.strip(_SPARK_TRIM)
    match = _DATE_TIME.fullmatch(trimmed)
    time_alone = False
    if match is None:
        time_alone = True
        # A leading T counts only as the text's very first character, before any control is trimmed.
        match = _TIME_ALONE.fullmatch(trimmed) if text.startswith("T") else _clock_alone(trimmed)
        if match is None:
            return None
    parts = match.groupdict()
    zone = UTC if parts["zone"] is None else _zone(parts["zone"])
    if zone is None:
        return None
    hour, minute, second = (int(parts[name] or 0) for name in ("hour", "minute", "second"))
    if time_alone:
        today = now.astimezone(zone).date()
        year, month, day = today.year, today.month, today.day
    else:
        year = int(parts["year"]) * (-1 if parts["sign"] == "-" else 1)
        month, day = int(parts["month"] or 1), int(parts["day"] or 1)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    fraction = parts["fraction"] or ""
    micros_of_second = int((fraction[:6] + "000000")[:6])
    local_seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
    seconds = local_seconds - _utc_offset_seconds(zone, year, month, day, hour, minute, second)
    whole = seconds * 1_000_000
    if not _MIN_LONG <= whole <= _MAX_LONG or not _MIN_LONG <= whole + micros_of_second <= _MAX_LONG:
        return None  # Spark's microseconds overflow a long: the cast gives null
    return whole + micros_of_second


def _clock_alone(text: str) -> re.Match[str] | None:
    """[h]h:[m]m[:[s]s...]: Spark reads a colon after one or two digits as a time without a date; minutes then required."""
    match = re.fullmatch(r"[0-9]{1,2}:[0-9]{1,2}.*", text, re.DOTALL)
    return _TIME_ALONE.fullmatch("T" + text) if match else None


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, any year (Python's date stops at 1-9999)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _utc_offset_seconds(zone: tzinfo, year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """The zone's offset at that local time; in a gap or overlap the earlier offset, as Java's ZonedDateTime.of."""
    if isinstance(zone, timezone):
        return int(zone.utcoffset(None).total_seconds())
    clamped = min(max(year, 1), 9999)  # beyond Python's years the result is far past or future either way
    day = min(day, _days_in_month(clamped, month))
    local = datetime(clamped, month, day, hour, minute, second, tzinfo=zone)
    return int(local.utcoffset().total_seconds())


# java.time.ZoneId.SHORT_IDS, which Spark passes to ZoneId.of.
_SHORT_IDS = {
    "ACT": "Australia/Darwin", "AET": "Australia/Sydney", "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo", "AST": "America/Anchorage", "BET": "America/Sao_Paulo", "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare", "CNT": "America/St_Johns", "CST": "America/Chicago", "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa", "ECT": "Europe/Paris", "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata", "JST": "Asia/Tokyo", "MIT": "Pacific/Apia", "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland", "PLT": "Asia/Karachi", "PNT": "America/Phoenix", "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles", "SST": "Pacific/Guadalcanal", "VST": "Asia/Ho_Chi_Minh",
    "EST": "-05:00", "MST": "-07:00", "HST": "-10:00",
}  # fmt: skip


def _zone(text: str) -> tzinfo | None:
    """Spark's `getZoneId` on a timestamp's zone: Z, an offset, UTC/GMT/UT with or without one, a short id, a region."""
    name = text.strip(_JAVA_TRIM)
    name = re.sub(r"([+-])([0-9]):", r"\g<1>0\2:", name, count=1)  # +h:mm, as before Spark 3.0
    name = re.sub(r"([+-])([0-9]{2}):([0-9])\Z", r"\1\2:0\3", name, count=1)  # +hh:m
    name = _SHORT_IDS.get(name, name)
    if len(name) <= 1 or name[0] in "+-":
        offset = _zone_offset(name)
    elif name.startswith(("UTC", "GMT", "UT")):
        rest = name[2:] if name.startswith("UT") and not name.startswith("UTC") else name[3:]
        if not rest:
            return UTC
        if rest[0] not in "+-":
            return _region(name)
        offset = _zone_offset(rest)
    else:
        return _region(name)
    return None if offset is None else timezone(timedelta(seconds=offset))


def _zone_offset(text: str) -> int | None:
    """java.time.ZoneOffset.of: Z, +h, +hh, +hhmm, +hh:mm, +hhmmss or +hh:mm:ss, up to 18 hours; in seconds."""
    if text == "Z":
        return 0
    if len(text) == 2:
        text = text[0] + "0" + text[1]
    layout = {3: "+hh", 5: "+hhmm", 6: "+hh:mm", 7: "+hhmmss", 9: "+hh:mm:ss"}.get(len(text))
    if layout is None or text[0] not in "+-":
        return None
    if any((char != ":") if want == ":" else char not in "0123456789" for char, want in zip(text[1:], layout[1:])):
        return None
    digits = text[1:].replace(":", "")
    hours, minutes, seconds = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hours > 18 or minutes > 59 or seconds > 59 or (hours == 18 and (minutes or seconds)):
        return None
    return (-1 if text[0] == "-" else 1) * (hours * 3600 + minutes * 60 + seconds)


def _region(name: str) -> tzinfo | None:
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9~/._+-]+", name) and name in _region_names():
        return ZoneInfo(name)
    return None


@cache
def _region_names() -> frozenset[str]:
    return frozenset(available_timezones())
