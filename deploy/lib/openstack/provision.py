"""Fills the freshly bootstrapped local Keystone of deploy/openstack.sh through its public API,
checks that Barbican accepts the result, and writes DIR/credentials and DIR/openrc.

Creates: roles creator and service; projects service, rbd-luks and other; users barbican
(role service on project service: what keystonemiddleware in Barbican needs to validate
tokens), rbd-luks and other (roles creator and member on their own project: creator is what
Barbican's default, legacy policy asks to create secrets and read one's own, member what its new
defaults ask), the key-manager service with its public endpoint, and an application credential
of user rbd-luks.

Passwords come from the environment (see PASSWORD_ENVS), not the command line. Uses only the
standard library, so it starts in a few milliseconds.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

PASSWORD_ENVS = {
    'admin': 'RBD_LUKS_OS_ADMIN_PASSWORD',
    'barbican': 'RBD_LUKS_OS_BARBICAN_PASSWORD',
    'rbd-luks': 'RBD_LUKS_OS_RBD_LUKS_PASSWORD',
    'other': 'RBD_LUKS_OS_OTHER_PASSWORD',
}
# user: (project, roles on it)
USERS = {
    'barbican': ('service', ['service']),
    'rbd-luks': ('rbd-luks', ['creator', 'member']),
    'other': ('other', ['creator', 'member']),
}
DOMAIN = 'Default'
HTTP_TIMEOUT_S = 20


class ApiError(Exception):
    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def call(method, url, body=None, token=None, expect=(200, 201, 204)):
    """One JSON request; returns (parsed body or None, response headers)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    except OSError as e:
        raise ApiError(f'{method} {url}: {e}') from None
    if status not in expect:
        detail = ' '.join(raw[:300].decode(errors='replace').split())
        raise ApiError(f'{method} {url}: HTTP {status}: {detail}', status)
    return (json.loads(raw) if raw else None), headers


def password_token(auth_url, user, password, project):
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': user, 'domain': {'name': DOMAIN}, 'password': password}}},
        'scope': {'project': {'name': project, 'domain': {'name': DOMAIN}}}}}
    doc, headers = call('POST', f'{auth_url}/auth/tokens', body, expect=(201,))
    return headers['X-Subject-Token'], doc['token']


class Keystone:
    """Keystone API calls as one user, with a new token whenever the last one has expired:
    with RBD_LUKS_KEYSTONE_TOKEN_EXPIRATION at a few seconds, provisioning outlives a token."""

    def __init__(self, auth_url, user, password, project):
        self.url = auth_url
        self.credentials = (user, password, project)
        self.token, self.token_doc = password_token(auth_url, *self.credentials)

    def call(self, method, path, body=None):
        try:
            return call(method, f'{self.url}/{path}', body, self.token)[0]
        except ApiError as e:
            if e.status != 401:
                raise
        self.token, self.token_doc = password_token(self.url, *self.credentials)
        return call(method, f'{self.url}/{path}', body, self.token)[0]

    def create(self, collection, kind, ref):
        return self.call('POST', collection, {kind: ref})[kind]['id']

    def find(self, collection, name):
        found = self.call('GET', f'{collection}?name={name}')[collection]
        return found[0]['id'] if found else None

    def grant(self, project_id, user_id, role_id):
        self.call('PUT', f'projects/{project_id}/users/{user_id}/roles/{role_id}')


def provision(args, passwords):
    ks = Keystone(args.auth_url, 'admin', passwords['admin'], 'admin')
    admin_doc = ks.token_doc
    default_domain = admin_doc['user']['domain']['id']

    roles = {r: ks.find('roles', r) or ks.create('roles', 'role', {'name': r})
             for r in ('creator', 'service', 'member')}
    users = {'admin': {'username': 'admin', 'password': passwords['admin'], 'project': 'admin',
                       'user_id': admin_doc['user']['id'],
                       'project_id': admin_doc['project']['id']}}
    for user, (project, user_roles) in USERS.items():
        project_id = ks.create('projects', 'project', {
            'name': project, 'domain_id': default_domain,
            'description': 'rbd-luks local OpenStack'})
        user_id = ks.create('users', 'user', {
            'name': user, 'domain_id': default_domain, 'password': passwords[user],
            'default_project_id': project_id})
        for role in user_roles:
            ks.grant(project_id, user_id, roles[role])
        users[user] = {'username': user, 'password': passwords[user], 'project': project,
                       'user_id': user_id, 'project_id': project_id}

    service_id = ks.create('services', 'service', {
        'type': 'key-manager', 'name': 'barbican', 'description': 'Key Manager'})
    ks.create('endpoints', 'endpoint', {
        'service_id': service_id, 'interface': 'public', 'region_id': args.region,
        'url': args.barbican_url})

    # Created with the user's own token, as Keystone's policy wants; it carries the user's
    # roles on the project.
    user = Keystone(args.auth_url, 'rbd-luks', passwords['rbd-luks'], 'rbd-luks')
    doc = user.call('POST', f'users/{users["rbd-luks"]["user_id"]}/application_credentials',
                    {'application_credential': {
                        'name': 'rbd-luks', 'description': 'rbd-luks tests and demo'}})
    app_cred = {'id': doc['application_credential']['id'],
                'secret': doc['application_credential']['secret'],
                'name': 'rbd-luks', 'user': 'rbd-luks'}
    return users, app_cred


def wait_for_barbican(args, passwords, deadline):
    """Until Barbican lists the project's secrets with a fresh user token: that request goes
    through authtoken, which validates the token with Keystone as user barbican."""
    while True:
        try:
            token, _ = password_token(args.auth_url, 'rbd-luks', passwords['rbd-luks'], 'rbd-luks')
            call('GET', f'{args.barbican_url}/v1/secrets?limit=1', token=token, expect=(200,))
            return
        except ApiError as e:
            if time.monotonic() > deadline:
                raise ApiError(f'Barbican not usable: {e}') from None
            time.sleep(0.1)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.chmod(path, 0o600)


def openrc(args, users, app_cred):
    u = users['rbd-luks']
    return f"""# rbd-luks local OpenStack: user rbd-luks, project rbd-luks. Source it or eval it.
export OS_AUTH_URL={args.auth_url}
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME={args.region}
export OS_INTERFACE=public
export OS_USERNAME={u['username']}
export OS_PASSWORD={u['password']}
export OS_PROJECT_NAME={u['project']}
export OS_USER_DOMAIN_NAME={DOMAIN}
export OS_PROJECT_DOMAIN_NAME={DOMAIN}
# The same user through its application credential (unset the password variables above first):
# export OS_AUTH_TYPE=v3applicationcredential
# export OS_APPLICATION_CREDENTIAL_ID={app_cred['id']}
# export OS_APPLICATION_CREDENTIAL_SECRET={app_cred['secret']}
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dir', required=True)
    p.add_argument('--auth-url', required=True)
    p.add_argument('--barbican-url', required=True)
    p.add_argument('--region', required=True)
    p.add_argument('--token-expiration', type=int, required=True)
    p.add_argument('--budget', type=float, required=True, help='seconds to wait for Barbican')
    args = p.parse_args()
    deadline = time.monotonic() + args.budget
    missing = [v for v in PASSWORD_ENVS.values() if not os.environ.get(v)]
    if missing:
        sys.exit(f'provision: {", ".join(missing)} not set')
    passwords = {user: os.environ[var] for user, var in PASSWORD_ENVS.items()}
    try:
        users, app_cred = provision(args, passwords)
        wait_for_barbican(args, passwords, deadline)
    except ApiError as e:
        sys.exit(f'provision: {e}')
    credentials = {
        'auth_url': args.auth_url,
        'barbican_url': args.barbican_url,
        'region': args.region,
        'user_domain_name': DOMAIN,
        'project_domain_name': DOMAIN,
        'token_expiration': args.token_expiration,
        'users': users,
        'application_credential': app_cred,
    }
    write_private(os.path.join(args.dir, 'credentials'), json.dumps(credentials, indent=2) + '\n')
    write_private(os.path.join(args.dir, 'openrc'), openrc(args, users, app_cred))


if __name__ == '__main__':
    main()
