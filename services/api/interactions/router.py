from fastapi import APIRouter

from services.api.problems import V1_RESPONSES

router = APIRouter(prefix="/interactions", tags=["interactions"], responses=V1_RESPONSES)
