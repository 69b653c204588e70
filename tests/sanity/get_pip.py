"""Stand-in for get-pip.py, which ansible-test downloads from a host outside the package registries.

ansible-test runs this script to put pip into the virtual environments of its sanity tests. It
bootstraps the pip bundled with Python (ensurepip), then installs the pip version ansible-test asked
for from the package index, as get-pip.py would.
"""

import ensurepip
import os
import subprocess
import sys

# get-pip.py options that have no meaning for pip itself.
IGNORED = ("--no-setuptools", "--no-wheel")

# ansible-test runs this with a clean environment, so pip would trust only the CAs it bundles;
# the system's trust store also has those of a proxy or mirror that the machine trusts.
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"

ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in IGNORED]
cert = ["--cert", SYSTEM_CA] if os.path.exists(SYSTEM_CA) else []
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade"] + cert + args))
