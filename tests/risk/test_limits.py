"""RiskLimits: the issue's defaults, validation that names the key, resolution per universe,
and a hydra structured config."""

import math

import numpy as np
import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from risk.limits import RiskLimits


def test_defaults_are_the_issues():
    limits = RiskLimits()
    limits.check()
    assert (limits.max_var, limits.var_confidence) == (0.02, 0.95)
    assert limits.max_correlation_exposure == 0.7
    assert limits.max_class_share == 0.4
    assert limits.max_drawdown == 0.15
    assert limits.var_multiplier() == pytest.approx(1.6448536269514722)


@pytest.mark.parametrize(("change", "key"), [
    ({"max_var": -0.01}, "risk.max_var"),
    ({"max_gross_leverage": 1e-9}, "risk.max_gross_leverage"),
    ({"instrument_caps": {"EURUSD": math.nan}}, "risk.instrument_caps.EURUSD"),
    ({"margin_rates": {"fx": math.inf}}, "risk.margin_rates.fx"),
    ({"max_correlation_exposure": 0.0}, "risk.max_correlation_exposure"),
    ({"var_confidence": 1.0}, "risk.var_confidence"),
    ({"var_distribution": "laplace"}, "risk.var_distribution"),
    ({"var_distribution": "student_t", "var_dof": 2.0}, "risk.var_dof"),
    ({"max_drawdown": 0.0}, "risk.max_drawdown"),
    ({"kill_switch_cooldown": -1}, "risk.kill_switch_cooldown"),
])
def test_check_names_the_key_out_of_its_domain(change, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        RiskLimits(**change).check()


def test_caps_resolve_per_instrument_and_class_with_overrides():
    limits = RiskLimits(max_gross_leverage=3.0, class_shares={"commodity": 0.2},
                        instrument_caps={"XAUUSD": 0.3}, max_instrument_weight=math.inf)
    np.testing.assert_allclose(limits.class_caps(["fx", "commodity"]), [1.2, 0.6])
    caps = limits.instrument_cap_array(["EURUSD", "XAUUSD"])
    np.testing.assert_array_equal(caps, [math.inf, 0.3])
    np.testing.assert_array_equal(limits.margin_rate_array(["equity", "fx"]), [0.5, 0.0333])
    off = RiskLimits(max_gross_leverage=math.inf, class_shares={"fx": 0.0})
    np.testing.assert_array_equal(off.class_caps(["fx", "commodity"]), [0.0, math.inf])


def test_misspelled_symbols_and_classes_raise():
    with pytest.raises(KeyError, match="EURUSDX"):
        RiskLimits(instrument_caps={"EURUSDX": 0.1}).instrument_cap_array(["EURUSD"])
    with pytest.raises(KeyError, match="comodity"):
        RiskLimits(class_shares={"comodity": 0.1}).class_caps(["fx", "commodity"])
    with pytest.raises(KeyError, match="crypto"):
        RiskLimits().margin_rate_array(["crypto"])


def test_limits_are_a_hydra_structured_config():
    schema = OmegaConf.structured(RiskLimits)
    merged = OmegaConf.merge(schema, {"max_var": 0.03, "margin_rates": {"crypto": 0.5}})
    limits = OmegaConf.to_object(merged)
    assert isinstance(limits, RiskLimits) and limits.max_var == 0.03
    assert limits.margin_rates["crypto"] == 0.5 and limits.margin_rates["fx"] == 0.0333
    with pytest.raises(ConfigKeyError):
        OmegaConf.merge(schema, {"max_vra": 0.03})
