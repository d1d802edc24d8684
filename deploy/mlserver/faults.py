"""Deliberately faulty MLServer models for FlexiFlow's fault tests.

They wrap a scikit-learn model saved by train.py and fail the way real
servers fail: SlowModel answers correctly but only after
parameters.extra.delay_seconds (without blocking the server's event loop,
so other models keep answering); BrokenModel fails every request with
HTTP 500.
"""

import asyncio

from mlserver.errors import MLServerError
from mlserver_sklearn import SKLearnModel


class SlowModel(SKLearnModel):
    async def predict(self, payload):
        extra = (self.settings.parameters.extra or {}) if self.settings.parameters else {}
        await asyncio.sleep(float(extra.get("delay_seconds", 3)))
        return await super().predict(payload)


class BrokenModel(SKLearnModel):
    async def predict(self, payload):
        raise MLServerError("digits-broken: this model fails every request (fault test)", status_code=500)
