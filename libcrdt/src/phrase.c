/*
 * phrase.c: recovery phrases. A phrase is 12 to 24 words drawn uniformly
 * from a fixed list of 256 (8 bits a word: 12 words = 96 bits); the
 * identity seed is Argon2id(phrase) (crdt_seed_from_phrase in replica.c),
 * so a lost device recovers its key pair from the words alone.
 */
#include <sodium.h>
#include <string.h>

#include "internal.h"

static const char *const WORDS[256] = {
    "acid", "acorn", "actor", "adult", "agent", "alarm", "album", "alley",
    "amber", "angle", "ankle", "apple", "april", "apron", "arena", "armor",
    "arrow", "atlas", "audio", "autumn", "avocado", "badge", "bagel",
    "baker", "bamboo", "banana", "banjo", "barrel", "basil", "basket",
    "beach", "beard", "beaver", "bench", "berry", "bicycle", "bishop",
    "blade", "blanket", "blossom", "board", "bonus", "border", "bottle",
    "boxer", "bracket", "breeze", "brick", "bridge", "bronze", "brush",
    "bubble", "bucket", "buffalo", "bundle", "butter", "button", "cabin",
    "cactus", "camel", "camera", "canal", "candle", "canoe", "canvas",
    "canyon", "carbon", "carpet", "carrot", "castle", "cattle", "cedar",
    "cellar", "cement", "chalk", "channel", "cherry", "chess", "chimney",
    "circle", "citrus", "clock", "cloud", "clover", "cobalt", "coconut",
    "comet", "copper", "coral", "cotton", "cousin", "coyote", "crane",
    "crater", "crystal", "cube", "current", "curtain", "cushion", "daisy",
    "dancer", "delta", "desert", "diamond", "dinner", "doctor", "dolphin",
    "domain", "donkey", "dragon", "drawer", "dream", "driver", "eagle",
    "earth", "echo", "eclipse", "elbow", "ember", "engine", "fabric",
    "falcon", "feather", "fennel", "ferry", "fiber", "field", "finger",
    "flame", "flute", "forest", "fossil", "fountain", "fox", "frost",
    "galaxy", "garden", "garlic", "giant", "ginger", "glacier", "globe",
    "goat", "gold", "granite", "grape", "gravel", "guitar", "hammer",
    "harbor", "harvest", "hazel", "helmet", "hero", "honey", "horizon",
    "hotel", "island", "ivory", "jacket", "jaguar", "jelly", "jungle",
    "kettle", "kitten", "ladder", "lagoon", "lantern", "laser", "lemon",
    "letter", "lily", "linen", "lion", "lizard", "lobster", "locket",
    "magnet", "mango", "maple", "marble", "meadow", "melon", "metal",
    "meteor", "mirror", "monkey", "motor", "mountain", "museum", "needle",
    "nickel", "noodle", "nutmeg", "ocean", "octave", "olive", "onion",
    "orange", "orbit", "orchid", "otter", "oyster", "paddle", "palace",
    "panda", "paper", "parrot", "pebble", "pencil", "pepper", "piano",
    "pigeon", "pilot", "planet", "plum", "pocket", "pollen", "potato",
    "prism", "pumpkin", "puzzle", "quartz", "rabbit", "radar", "radish",
    "raven", "ribbon", "river", "robot", "rocket", "saddle", "salmon",
    "sand", "satin", "school", "silver", "sketch", "spider", "spoon",
    "squirrel", "statue", "stone", "summer", "sunset", "swan", "table",
    "tiger", "timber", "tomato", "tower", "tulip", "tunnel", "turtle",
    "velvet", "violin",
};

int
crdt_phrase_generate(char *buf, size_t size, int words)
{
    size_t off = 0;

    if (buf == NULL || words < 12 || words > 24)
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    for (int i = 0; i < words; i++) {
        const char *w = WORDS[randombytes_uniform(256)];
        size_t n = strlen(w);
        if (off + n + 2 > size) {
            sodium_memzero(buf, size);
            return CRDT_EINVAL;
        }
        if (i > 0)
            buf[off++] = ' ';
        memcpy(buf + off, w, n);
        off += n;
    }
    buf[off] = 0;
    return CRDT_OK;
}
