"""Registry: built-ins, entry points, module:attr references and params parsing."""
from __future__ import annotations

import pytest

from methods.base import Method
from methods.registry import (
    ENTRY_POINT_GROUP,
    is_builtin,
    list_methods,
    method_info,
    parse_params,
    register_method,
    resolve_method,
)
from w2s_common.errors import InputError

BUILTINS = {"vanilla", "aux_conf", "confident", "bootstrap", "em_posterior", "zero_shot_prior",
            "external"}


def test_builtins_are_registered_with_one_line_sourced_descriptions():
    from methods import registry

    listed = [info for info in list_methods() if not isinstance(info, tuple)]
    assert BUILTINS <= {info.method.name for info in listed if info.origin == "builtin"}
    registry._load_builtins()  # the classes themselves (the listing describes ports in the jail)
    infos = [registry._BUILTINS[name] for name in sorted(BUILTINS)]
    for info in infos:
        method = info.method
        assert isinstance(method, Method)
        assert "\n" not in method.description
        if info.origin == "builtin":
            assert is_builtin(method)
            assert "Burns et al." in method.description or "sandbox" in method.description or \
                "plugin contract" in method.description
            assert method.Params.model_config["extra"] == "forbid"
            assert type(method).__doc__ and len(type(method).__doc__) > 80


def test_unknown_names_list_the_known_ones():
    with pytest.raises(InputError, match="unknown method 'nope'; known methods: aux_conf, "
                                         "bootstrap, confident"):
        resolve_method("nope")


def test_module_attr_references_resolve_classes_and_objects_as_plugins():
    by_class = resolve_method("plugins_for_tests:ScaledWeak")
    by_object = resolve_method("plugins_for_tests:scaled_weak")
    assert by_class.name == by_object.name == "scaled_weak"
    assert not is_builtin(by_class) and not is_builtin(by_object)
    assert method_info(by_class).reference == "plugins_for_tests:ScaledWeak"
    assert method_info(by_class).origin == "reference"


@pytest.mark.parametrize("reference, message", [
    ("no_such_module_w2s:Thing", "cannot import module 'no_such_module_w2s'"),
    ("plugins_for_tests:Missing", "has no attribute 'Missing'"),
    ("plugins_for_tests:NotAMethod", "not a valid method: `description`"),
    ("plugins_for_tests:", "expected 'package.module:attr'"),
])
def test_bad_references_are_input_errors(reference, message):
    with pytest.raises(InputError, match=message):
        resolve_method(reference)


def test_a_param_nested_past_the_parser_is_one_line():
    method = resolve_method("vanilla")
    with pytest.raises(InputError, match="nested too deeply") as info:
        parse_params(method, ["epochs=" + "[" * 100_000])
    assert info.value.field == "--param epochs"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring two entry points of our group."""
    dist_info = tmp_path / "w2s_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: w2s-test-plugin\n"
                                        "Version: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nscaled_weak = plugins_for_tests:ScaledWeak\n"
        "broken = plugins_for_tests:DoesNotExist\n")
    monkeypatch.setenv("W2S_PLUGIN_PATH", str(tmp_path))
    return tmp_path


def test_entry_points_in_the_pipelines_own_environment_are_refused(tmp_path, monkeypatch):
    dist_info = tmp_path / "w2s_env_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: w2s-env-plugin\n"
                                        "Version: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nenv_scaled = plugins_for_tests:ScaledWeak\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as if pip-installed beside the pipeline
    with pytest.raises(InputError, match="'env_scaled' comes from w2s-env-plugin, installed in "
                                         "the pipeline's own environment"):
        resolve_method("env_scaled")
    refused = [item for item in list_methods() if isinstance(item, tuple)]
    assert refused and refused[0][0] == "env_scaled" and "plugin directory" in refused[0][1]


def test_entry_points_resolve_and_list(installed_plugin):
    method = resolve_method("scaled_weak")
    info = method_info(method)
    assert (info.origin, info.provider, info.reference) == ("entry-point", "w2s-test-plugin",
                                                            "scaled_weak")
    assert not is_builtin(method)
    listed = list_methods()
    names = [item[0] if isinstance(item, tuple) else item.method.name for item in listed]
    assert "scaled_weak" in names
    broken = [item for item in listed if isinstance(item, tuple)]
    assert broken and broken[0][0] == "broken" and "failed to load" in broken[0][1]
    with pytest.raises(InputError, match="entry point 'broken'"):
        resolve_method("broken")
    with pytest.raises(InputError, match="known methods: .*broken.*scaled_weak"):
        resolve_method("nope")


def test_parse_params_types_values_from_json_or_text():
    confident = resolve_method("confident")
    assert parse_params(confident, ["low=0.1", "high=0.9"]).low == 0.1
    external = resolve_method("external")
    params = parse_params(external, ["command=true", "timeout_s=5"])
    assert params.command == "true" and params.timeout_s == 5.0
    assert parse_params(external, ["command=sh run.sh --k=v"]).command == "sh run.sh --k=v"
    assert parse_params(resolve_method("bootstrap"), ["intermediate=null"]).intermediate is None
    assert parse_params(resolve_method("vanilla"), ["hard=true"]).hard is True
    # Typed mappings (params stored in a run spec) are validated as they are.
    assert parse_params(resolve_method("bootstrap"), {"intermediate": None}).intermediate is None
    with pytest.raises(InputError, match="--param hard: method vanilla: expected bool"):
        parse_params(resolve_method("vanilla"), {"hard": [1]})


@pytest.mark.parametrize("method, pairs, message", [
    ("confident", ["lo=0.1"], "--param lo: method confident: unknown param; known params: "
                              "low, high"),
    ("confident", ["low=abc"], "--param low: method confident: expected float"),
    ("confident", ["low=0.9"], "--param: method confident: .*low must be < high"),
    ("vanilla", ["hard"], "--param: method vanilla: expected key=value, got 'hard'"),
    ("vanilla", ["hard=1", "hard=0"], "--param hard: method vanilla: given twice"),
    ("em_posterior", ["binning=log"], "--param binning: method em_posterior: expected"),
    ("em_posterior", ["n_bins=0"], "--param n_bins: .*greater than or equal to 1"),
])
def test_bad_params_name_method_field_and_expectation(method, pairs, message):
    with pytest.raises(InputError, match=message):
        parse_params(resolve_method(method), pairs)


@pytest.mark.parametrize("pairs", [["alpha=inf"], ["alpha=Infinity"], ["alpha=1e999"],
                                   [f"alpha={'9' * 5000}"], {"alpha": float("inf")}])
def test_params_that_json_cannot_carry_are_refused_where_they_are_given(pairs):
    """helper-44: `alpha: .inf` passed every check, became null in the group file and failed
    in the worker ("got None") after the campaign had started; a 5000-digit integer was a
    traceback."""
    with pytest.raises(InputError) as caught:
        parse_params(resolve_method("em_posterior"), pairs)
    assert str(caught.value).startswith(
        "--param alpha: method em_posterior: expected a finite number, got "), str(caught.value)


def test_register_method_rejects_invalid_methods_and_duplicates():
    class NoDescription:
        name = "x"

    with pytest.raises(ValueError, match="description"):
        register_method(NoDescription)
    vanilla_type = type(resolve_method("vanilla"))

    class Impostor(vanilla_type):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_method(Impostor)


@pytest.mark.parametrize("name", ["REAL1", "PROMOTE1", "REALpromote", "promoteMe", "HARMFULx",
                                  "PASS1", "Ceiling2", "weak0", "Real_1", "REAL.", "hold-out"])
def test_names_that_read_as_a_verdict_or_an_arm_are_refused(name):
    """helper-45: a verdict word joined to digits or letters, or an arm's name with a number,
    passed the check on words between separators."""
    from pydantic import ValidationError

    from methods.plugins import PluginDescription

    with pytest.raises(ValidationError, match="reads as|holds the word"):
        PluginDescription(name=name, description="d", params=None, params_schema={})


@pytest.mark.parametrize("name", ["realistic_aug", "weak_sup", "holdout_mix", "bootstrap2",
                                  "em_posterior", "trains_student"])
def test_names_that_merely_contain_such_letters_are_kept(name):
    from methods.plugins import PluginDescription

    assert PluginDescription(name=name, description="d", params=None, params_schema={}).name
