"""Runs the local Barbican of deploy/openstack.sh: the paste pipeline of barbican-api-paste.ini
(keystonemiddleware authtoken in front of the v1 API) on a wsgiref server on 127.0.0.1.

Debian's python3-barbican ships no API server of its own (that is the uwsgi-based barbican-api
package), and a single-threaded wsgiref server is plenty for tests and a demo.
"""
import argparse
import os
import sys
import warnings
import wsgiref.simple_server


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config-file', required=True)
    p.add_argument('--paste-file', required=True)
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--pid-file', required=True)
    return p.parse_args()


def main():
    args = parse_args()
    with open(args.pid_file, 'w') as f:
        f.write(f'{os.getpid()}\n')
    # Bound before the slow imports, so a port in use fails at once and is not taken meanwhile.
    try:
        server = wsgiref.simple_server.make_server('127.0.0.1', args.port, None)
    except OSError as e:
        sys.exit(f'barbican_server: cannot listen on 127.0.0.1:{args.port}: {e.strerror}')

    # Barbican 15 keeps its pre-Wallaby policy defaults next to the new ones; oslo.policy warns
    # about each of about 60 rules at the first request, which buries everything else in the log.
    warnings.filterwarnings('ignore', category=UserWarning, module='oslo_policy.policy')
    from barbican.common import config
    from paste import deploy
    # Barbican parsed its default config files at import; parse again with only ours. The
    # paste app factories (and authtoken) read this global configuration.
    config.parse_args(config.CONF, default_config_files=[os.path.abspath(args.config_file)])
    server.set_app(deploy.loadapp('config:' + os.path.abspath(args.paste_file)))
    print(f'barbican_server: serving http://127.0.0.1:{args.port}', file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
