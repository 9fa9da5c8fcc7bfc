"""Every feature of the app, in mounting order. Adding a feature is one line here."""

from __future__ import annotations

from admin_console.feature import FEATURE as CONSOLE
from backend.feature import FEATURE as CORE
from backend.features import Feature
from crowdsource.feature import FEATURE as CROWDSOURCE
from residents.feature import FEATURE as RESIDENTS
from search.feature import FEATURE as SEARCH
from venues.feature import FEATURE as VENUES

FEATURES: tuple[Feature, ...] = (CORE, CROWDSOURCE, SEARCH, VENUES, RESIDENTS, CONSOLE)
