"""The baseline for read throughput: a FastAPI endpoint that returns a constant."""

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/const")
    async def const() -> dict[str, str]:
        return {"status": "ok"}

    return app
