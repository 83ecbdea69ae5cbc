package rotation

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxExecutionName is Step Functions' limit on an execution's name.
const maxExecutionName = 80

// minUserPart is the least of the user's name an execution name keeps
// (when the name is that long), however long the rest.
const minUserPart = 8

// GraceExecutionName names a key's grace-and-delete execution after its
// user and key (and the rotation's generation): see executionName.
func GraceExecutionName(user, id string, rotation int) string {
	return executionName("", user, id, rotation, 0)
}

// executionName names the key's own execution (its adoption window and
// grace period) for the attempt-th execution of a rotation (0: the first;
// a window whose execution stopped goes on in a new one), starting with
// the member account in organization mode:
//
//	<user>-<key id>-r<rotation>[-<attempt>]
//
// Log-safe: StartExecution accepts most characters, but "to enable logging
// with CloudWatch Logs, the name should only contain 0-9, A-Z, a-z, - and
// _" (Step Functions API Reference, StartExecution, name); IAM user names
// also hold + = , . @, each written _. At most 80 characters (the same
// reference): the user's name is cut to fit, never the key id of a real key
// (20 characters). Unique: the record id, an access key id, is unique
// across AWS (IAM User Guide, "IAM identifiers"), and a key id holds no
// '-', so the name's end says which key and rotation it is whatever the
// user's name became. Where the id cannot be kept whole (a console
// password's record, named by its user and set time; a key id too long to
// fit), its readable part is followed by a short hash of the whole id.
// Findable: the console's search by prefix finds the user's executions,
// and the key id finds the key's.
//
// A rotation names its execution once and records it (ledger.Record's
// GraceExecution and Adoption.Execution): a rotation started under an
// earlier naming keeps its name.
func executionName(account, user, id string, rotation, attempt int) string {
	tail := fmt.Sprintf("-r%d", rotation)
	if attempt > 0 {
		tail += fmt.Sprintf("-%d", attempt)
	}
	if account != "" {
		user = account + "-" + user
	}
	key, whole := idPart(account, id)
	// Room for the key: all but the tail, the '-' and the least of the user.
	room := maxExecutionName - len(tail) - 1 - minUserPart
	if !whole || len(key) > room {
		h := sha256.Sum256([]byte(id))
		sum := hex.EncodeToString(h[:4])
		key = clip(key, room-len(sum)-1) + "_" + sum
	}
	return clip(logSafe(user), maxExecutionName-len(tail)-len(key)-1) + "-" + key + tail
}

// idPart is the log-safe form of a record id inside an execution name and
// whether it is the whole id: an access key id as it is; a console
// password's record ("password:<user>:<set time>", in a member account
// prefixed with the account) as "pw<set time>", its user being named
// before it.
func idPart(account, id string) (string, bool) {
	bare := strings.TrimPrefix(id, account+"/")
	if rest, ok := strings.CutPrefix(bare, "password:"); ok { // ledger.PasswordID
		return "pw" + logSafe(rest[strings.LastIndexByte(rest, ':')+1:]), false
	}
	safe := logSafe(bare)
	return safe, safe == id && id != ""
}

// logSafe writes every character but 0-9, A-Z, a-z, - and _ as _.
func logSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// clip cuts an ASCII s to at most n bytes (none for n <= 0).
func clip(s string, n int) string {
	switch {
	case n <= 0:
		return ""
	case len(s) > n:
		return s[:n]
	}
	return s
}
