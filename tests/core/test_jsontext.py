import json

from services.core import jsontext


def test_integers_beyond_64_bits_are_written_as_json() -> None:
    value = {"b": 2**70, "a": [-(2**65), "x"]}
    assert json.loads(jsontext.dumps(value)) == value
    assert (
        jsontext.dumps(value, sort_keys=True)
        == b'{"a": [-36893488147419103232, "x"], "b": 1180591620717411303424}'
    )


def test_sort_keys_gives_one_text_for_equal_values() -> None:
    assert jsontext.dumps({"b": 1, "a": 2}, sort_keys=True) == jsontext.dumps(
        {"a": 2, "b": 1}, sort_keys=True
    )
    assert jsontext.dumps({"b": 1, "a": 2}) == b'{"b":1,"a":2}'


def test_default_converts_what_json_cannot_hold() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert jsontext.dumps([Odd()], default=str) == b'["odd"]'
    assert jsontext.dumps([Odd(), 2**70], default=str) == b'["odd", 1180591620717411303424]'
