# SPDX-License-Identifier: MIT
# Kept only for install.sh, which sources it: everything is in tests/harness/harness.sh,
# and this file goes once install.sh sources that instead.
. "$(dirname "${BASH_SOURCE[0]}")/../harness/harness.sh"
