# moto_server with a settable clock, for keyrotor's tests and demo.
#
# IAM dates everything "now"; a rotation tool needs keys of many ages and
# uses. This wrapper starts the ordinary moto server after replacing moto's
# utcnow() with one that adds an offset (seconds, a float) read from the file
# named by KEYROTOR_MOTO_CLOCK. Seeding code moves the clock back, creates and
# uses keys, and moves it forward again. It also refuses requests signed with
# an Inactive key, as AWS does (below).
#
# And for console passwords: moto 5.2.1 dates a login profile
# (GetLoginProfile's CreateDate) and the credential report's
# password_last_changed with the user's creation, whatever password was set
# since. IAM dates them when the password was set (API reference,
# LoginProfile: "The date when the password for the user was created";
# IAM User Guide, credential report: password_last_changed "The date and
# time when the user's password was last set"). Here both carry the time of
# the user's last CreateLoginProfile or UpdateLoginProfile, so a person's
# re-set password is a new password, as keyrotor sees it in AWS. (Whether
# IAM moves CreateDate on UpdateLoginProfile is not documented: this
# emulator assumes it does; see docs/limits.md.)
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


# AWS refuses a request signed with an Inactive access key (IAM API Reference,
# UpdateAccessKey, Status: "Inactive means that the key cannot be used":
# https://docs.aws.amazon.com/IAM/latest/APIReference/API_UpdateAccessKey.html)
# and records no use
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


# Console passwords dated when set (see the top).
import moto.iam.responses as _iam_responses  # noqa: E402


def _password_set(user):
    return getattr(user, "keyrotor_password_set", None) or user.create_date


def _dated(name):
    orig = getattr(_iam.IAMBackend, name)

    def f(self, user_name, *args, **kwargs):
        out = orig(self, user_name, *args, **kwargs)
        self.get_user(user_name).keyrotor_password_set = _utils.utcnow()
        return out

    setattr(_iam.IAMBackend, name, f)


_dated("create_login_profile")
_dated("update_login_profile")


def _profile(name):
    orig = getattr(_iam_responses.IamResponse, name)

    def f(self):
        out = orig(self)
        user = self.backend.get_user(self._get_param("UserName"))
        out.result["LoginProfile"]["CreateDate"] = _password_set(user)
        return out

    setattr(_iam_responses.IamResponse, name, f)


_profile("create_login_profile")
_profile("get_login_profile")

_to_csv = _iam.User.to_csv


def _user_csv(self):
    # password_last_changed is the 6th of 22 columns; a user name may hold
    # commas, the 16 columns after it never do.
    row = _to_csv(self)
    if not self.password:
        return row
    parts = row.rstrip("\n").rsplit(",", 16)
    first = parts[0].rsplit(",", 1)
    first[1] = _password_set(self).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return ",".join([",".join(first)] + parts[1:]) + "\n"


_iam.User.to_csv = _user_csv

from moto.server import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
