"""The usage dashboard's sentences: a forecast, or why there is none; never a negative or infinite figure."""

from __future__ import annotations

import pytest

from desktop.core.spend_models import Forecast
from desktop.core.usage import forecast_text, shares, totals_text


@pytest.mark.parametrize(("forecast", "text"), [
    (Forecast(12.43, 9.8, 31, 39, 14, 387),
     "About 31 days left at your 7-day average of 12.4 credits a day (39 at your 30-day average)."),
    (Forecast(400.0, 400.0, 1, 1, 3, 400), "About 1 day left at your 7-day average of 400.0 credits a day "
                                           "(1 at your 30-day average)."),
    (Forecast(0.0, 0.5, None, 1970, 3, 985), "Nothing spent in the last 7 days; at your 30-day average of 0.5 "
                                             "credits a day your balance lasts about 1,970 days."),
    (Forecast(100.0, 100.0, None, None, 2, 800), "Not enough data yet for a forecast: it needs spending on 3 days "
                                                 "(so far 2 days in the last 30)."),
    (Forecast(0.0, 0.0, None, None, 0, 50), "Not enough data yet for a forecast: it needs spending on 3 days "
                                            "(so far 0 days in the last 30)."),
    (Forecast(30.0, 20.0, 0, 0, 5, -120), "No credits left: buy credits to go on spending."),
])
def test_forecast_in_words(forecast: Forecast, text: str) -> None:
    assert forecast_text(forecast) == text


def test_totals_in_words() -> None:
    assert totals_text({"spent": 980, "purchased": 1650, "clawedBack": 320, "adjusted": -25, "openingBalance": 12,
                        "closingBalance": 337}) == (
        "Spent 980, bought 1,650, taken back 320, adjusted -25 credits; balance 12 → 337 (+325).")


@pytest.mark.parametrize(("amounts", "percents"), [
    ([5, 5, 2], [42, 42, 16]),  # rounding each would say 42, 42, 17: 101 %
    ([1, 1, 1], [34, 33, 33]),
    ([97, 3], [97, 3]),
    ([1, 0, 2], [33, 0, 67]),
    ([7], [100]),
    ([0, 0], [0, 0]),
    ([1, 1, 1, 1, 1, 1, 1], [15, 15, 14, 14, 14, 14, 14]),
])
def test_the_breakdowns_shares_add_up_to_one_hundred(amounts: list[int], percents: list[int]) -> None:
    assert shares(amounts) == percents
    assert sum(percents) in (0, 100)
