from fastapi import APIRouter

from services.api.problems import V1_RESPONSES

router = APIRouter(prefix="/tickets", tags=["tickets"], responses=V1_RESPONSES)
