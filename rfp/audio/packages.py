"""The Debian packages the corpus comes from (`rfp.audio.corpus` fetches them).

Names only, so the build's config (configs/data.py) reads its defaults here
without loading the audio code or JAX.
"""

# Packages with the most distinct minutes per downloaded byte (reference notes, Sec. 5).
MUSIC_PACKAGES = (
    'warzone2100-music', 'ufoai-music', 'wesnoth-1.16-music', 'planetblupi-music-ogg',
    'drascula-music', 'nexuiz-music', 'singularity-music', 'colobot-common-sounds',
    'hedgewars-data', 'supertux-data', 'naev-data', 'widelands-data', '0ad-data',
)
# More music for fingerprinter training only: R, G and D stay as the packages above
# split them, while the encoder hears more music (reference notes, Sec. 5): Ogg
# soundtracks, then tracker modules (`MODULE_SUFFIXES`), which ffmpeg renders
# through libopenmpt.
FINGERPRINTER_PACKAGES = (
    'supertuxkart-data', 'freedroidrpg-data', 'flare-game', 'megaglest-data', 'openclonk-data',
    'zaz-data', 'fretsonfire-songs-muldjord', 'fretsonfire-songs-sectoid', 'frozen-bubble-data',
    'xmoto-data', 'extremetuxracer-data', 'lincity-ng-data', 'powermanga-data', 'scorched3d-data',
    'marsshooter-data', 'pushover-data', 'starfighter-data', 'warmux-data', 'wizznic-data',
    'fillets-ng-data', 'davegnukem-data', 'hyperrogue-music', 'enigma-data', 'asc-music',
    'wordwarvi-sound', 'lordsawar-data', 'adonthell-data', 'noiz2sa-data',
    'ironseed-data', 'tecnoballz-data', 'pekka-kana-2-data', 'rafkill-data', 'pachi-data',
    'biniax2-data', 'open-invaders-data', 'bomberclone-data', 'madbomber-data', 'penguin-command',
    'gl-117-data', 'circuslinux-data', 'njam-data', 'tomatoes-data', 'criticalmass-data', 'gltron',
    'monsterz-data', 'dodgindiamond2', 'solarwolf', 'ballz-data', 'ceferino-data', 'cuyo-data',
    'pingus-data', 'ri-li-data', 'tuxtype-data',
)
NOISE_PACKAGES = ('0ad-data', 'asterisk-core-sounds-en-wav')
