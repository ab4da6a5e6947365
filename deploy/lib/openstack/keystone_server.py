"""Runs the local Keystone of deploy/openstack.sh in one process: fernet and credential key
repositories, database schema and admin bootstrap, then the public v3 API on a wsgiref server.

The keystone-manage steps (fernet_setup, credential_setup, db_sync, bootstrap) run here, in the
server process, because the database is SQLite in memory and exists only in this process; it
also saves importing Keystone four more times, about 2 s of CPU each.

The admin password comes from the environment (RBD_LUKS_KEYSTONE_BOOTSTRAP_PASSWORD), not the
command line, so that ps does not show it.
"""
import argparse
import os
import sys
import wsgiref.simple_server

PASSWORD_ENV = 'RBD_LUKS_KEYSTONE_BOOTSTRAP_PASSWORD'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config-file', required=True)
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--pid-file', required=True)
    p.add_argument('--region', default='RegionOne')
    return p.parse_args()


def prepare(conf, port, region, admin_password):
    """Configures Keystone from conf and leaves it with keys, schema, admin and catalog."""
    # keystone.server.configure parses sys.argv; ours are not Keystone's options.
    sys.argv = sys.argv[:1]
    import keystone.conf
    import keystone.server
    from keystone.cmd import bootstrap
    from keystone.common import fernet_utils
    from keystone.common.sql import upgrades
    from keystone.credential.providers import fernet as credential_fernet

    keystone.server.configure(config_files=[conf])
    cfg = keystone.conf.CONF
    repos = [(cfg.fernet_tokens.key_repository, cfg.fernet_tokens.max_active_keys, 'fernet_tokens'),
             (cfg.credential.key_repository, credential_fernet.MAX_ACTIVE_KEYS, 'credential')]
    if os.path.abspath(cfg.fernet_receipts.key_repository) != os.path.abspath(repos[0][0]):
        repos.append((cfg.fernet_receipts.key_repository, cfg.fernet_receipts.max_active_keys,
                      'fernet_receipts'))
    for path, max_keys, group in repos:
        futils = fernet_utils.FernetUtils(path, max_keys, group)
        futils.create_key_directory()
        if not futils.validate_key_repository(requires_write=True):
            sys.exit(f'keystone_server: key repository {path} is not usable')
        futils.initialize_key_repository()

    upgrades.offline_sync_database_to_version()

    # Bootstrapper loads the backends (which needs the schema) and creates the default domain,
    # project and user admin, roles admin/member/reader, the region and the identity endpoint.
    b = bootstrap.Bootstrapper()
    b.admin_username = 'admin'
    b.admin_password = admin_password
    b.project_name = 'admin'
    b.admin_role_name = 'admin'
    b.service_name = 'keystone'
    b.region_id = region
    b.public_url = f'http://127.0.0.1:{port}/v3'
    b.bootstrap()


def make_app():
    """What keystone-wsgi-public builds, minus the configuration and backend loading that
    prepare() has done already (the provider registry accepts each backend only once)."""
    from keystone.server.flask import application
    from keystone.server.flask import core
    return core.setup_app_middleware(application.application_factory('public'))


def main():
    args = parse_args()
    admin_password = os.environ.pop(PASSWORD_ENV, '')
    if not admin_password:
        sys.exit(f'keystone_server: {PASSWORD_ENV} is not set')
    with open(args.pid_file, 'w') as f:
        f.write(f'{os.getpid()}\n')
    # Bound before the slow part, so a port in use fails at once and is not taken meanwhile.
    try:
        server = wsgiref.simple_server.make_server('127.0.0.1', args.port, None)
    except OSError as e:
        sys.exit(f'keystone_server: cannot listen on 127.0.0.1:{args.port}: {e.strerror}')
    prepare(os.path.abspath(args.config_file), args.port, args.region, admin_password)
    server.set_app(make_app())
    print(f'keystone_server: serving http://127.0.0.1:{args.port}/v3', file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
