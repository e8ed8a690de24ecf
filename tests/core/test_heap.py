"""The API and the worker take their startup objects out of the garbage collector's walks."""

import gc
from collections.abc import Iterator

import pytest

from services.api.app import create_app
from services.core.config import Settings
from tests.scorer.workers import run_burst


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Start with nothing frozen, as a new process does; freeze again afterwards."""
    gc.unfreeze()
    yield
    gc.freeze()


@pytest.mark.usefixtures("unfrozen")
async def test_the_api_freezes_its_startup_objects(settings: Settings) -> None:
    application = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with application.router.lifespan_context(application):
        frozen = gc.get_freeze_count()
        tracked = {id(o) for o in gc.get_objects()}
    assert frozen > 0
    assert id(application.router) not in tracked


@pytest.mark.usefixtures("unfrozen")
async def test_the_worker_freezes_its_startup_objects(settings: Settings) -> None:
    await run_burst(settings)
    assert gc.get_freeze_count() > 0
