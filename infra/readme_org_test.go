package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/shared/config"
)

// TestReadmeMemberPermissions keeps docs/organizations.md's member role
// section true (README links to it): it lists exactly the member role's actions (MemberActions, with every
// option on, delivery's settings included), no more, no fewer.
func TestReadmeMemberPermissions(t *testing.T) {
	b, err := os.ReadFile("../docs/organizations.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "The member stack's role `KeyRotorMember`")
	if start < 0 {
		t.Fatal("docs/organizations.md lacks the member stack's permissions in its member role section")
	}
	para := s[start:]
	para = para[:strings.Index(para, "\n\n")]
	var listed []string
	for _, m := range regexp.MustCompile("`((?:iam|kms|secretsmanager|ssm|sts):[A-Za-z]+)`").FindAllStringSubmatch(para, -1) {
		listed = append(listed, m[1])
	}
	slices.Sort(listed)
	all := config.Default()
	all.RetirePasswords, all.ExemptGroup = true, "exempt"
	all.DeliveryParameters, all.DeliverySecrets = []string{"/ci/*"}, []string{"ci/aws"}
	want := MemberActions(all)
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Fatalf("docs/organizations.md lists the member role's actions\n%v\nwant (MemberActions with every option)\n%v", listed, want)
	}
}
