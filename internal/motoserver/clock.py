# moto_server with a settable clock, for keyrotor's tests and demo.
#
# IAM dates everything "now"; a rotation tool needs keys of many ages and
# uses. This wrapper starts the ordinary moto server after replacing moto's
# utcnow() with one that adds an offset (seconds, a float) read from the file
# named by KEYROTOR_MOTO_CLOCK. Seeding code moves the clock back, creates and
# uses keys, and moves it forward again. It also refuses requests signed with
# an Inactive key, as AWS does (below).
import datetime
import os
import sys

import moto.core.utils as _utils

_CLOCK = os.environ.get("KEYROTOR_MOTO_CLOCK", "")
_orig = _utils.utcnow


def _offset():
    if not _CLOCK:
        return 0.0
    try:
        with open(_CLOCK) as f:
            return float(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def utcnow():
    return _orig() + datetime.timedelta(seconds=_offset())


_utils.utcnow = utcnow
for _name, _mod in list(sys.modules.items()):
    if _name.startswith("moto") and getattr(_mod, "utcnow", None) is _orig:
        setattr(_mod, "utcnow", utcnow)


# AWS refuses a request signed with an Inactive access key and records no use
# of it; moto accepts it and records the use. keyrotor reads a key's last use
# as evidence (an Inactive key cannot be used), so the emulation refuses such a
# request before moto records the visit, with the error each protocol gives:
# query (STS, IAM, SNS): 403 InvalidClientTokenId; JSON: 400
# UnrecognizedClientException; S3: 403 InvalidAccessKeyId.
import moto.iam.models as _iam  # noqa: E402
from moto.core.responses import BaseResponse  # noqa: E402
from moto.utilities.utils import get_partition  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402

_visit = _iam.mark_account_as_visited
_setup = BaseResponse.setup_class
_TOKEN = "The security token included in the request is invalid."


class _Inactive(Exception):
    pass


class _Refused(HTTPException):
    def __init__(self, code, error, body, content_type):
        super().__init__()
        self.code, self._error, self._body, self._type = code, error, body, content_type

    def get_headers(self, *args, **kwargs):
        return [("X-Amzn-ErrorType", self._error), ("Content-Type", self._type)]

    def get_body(self, *args, **kwargs):
        return self._body


def mark_account_as_visited(account_id, access_key, service, region):
    try:
        key = _iam.iam_backends[account_id][get_partition(region)].access_keys.get(access_key)
    except (KeyError, AttributeError):
        key = None
    if key is not None and getattr(key, "status", "Active") != "Active":
        raise _Inactive()
    return _visit(account_id=account_id, access_key=access_key, service=service, region=region)


def setup_class(self, *args, **kwargs):
    try:
        return _setup(self, *args, **kwargs)
    except _Inactive:
        headers = getattr(self, "headers", {}) or {}
        if getattr(self, "service_name", "") == "s3":
            raise _Refused(403, "InvalidAccessKeyId", '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>', "application/xml")
        if headers.get("X-Amz-Target") or "json" in headers.get("Content-Type", ""):
            raise _Refused(400, "UnrecognizedClientException", '{"__type":"UnrecognizedClientException","message":"%s"}' % _TOKEN, "application/x-amz-json-1.1")
        raise _Refused(403, "InvalidClientTokenId", '<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>%s</Message></Error><RequestId>keyrotor-emulated</RequestId></ErrorResponse>' % _TOKEN, "text/xml")


_iam.mark_account_as_visited = mark_account_as_visited
BaseResponse.setup_class = setup_class

from moto.server import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
